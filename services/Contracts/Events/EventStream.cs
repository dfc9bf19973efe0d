using ShopReference.Valkey;

namespace ShopReference.Contracts.Events;

/// <summary>
/// The shop's event stream: the contract between the services that publish (catalog, cart-session) and the one that
/// consumes (analytics). Publishers only append to it (their Valkey users may only <c>XADD</c> there).
/// </summary>
public static class EventStream
{
    /// <summary>The hash tag the analytics keys share with the stream (see the analytics service's keys).</summary>
    public const string Tag = "shop";

    /// <summary>The stream (<c>XADD … MAXLEN ~</c>).</summary>
    public static readonly string Key = KeySchema.TaggedKey("analytics", "events", Tag);

    /// <summary>The consumer group the analytics replicas share.</summary>
    public const string ConsumerGroup = "analytics";
}
