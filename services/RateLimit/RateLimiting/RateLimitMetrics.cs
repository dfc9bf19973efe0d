using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ShopReference.RateLimit.RateLimiting;

/// <summary>The <c>ShopReference.RateLimit</c> meter: every decision, how long it took, and every outage switch.</summary>
public sealed class RateLimitMetrics
{
    public const string MeterName = "ShopReference.RateLimit";
    private readonly Counter<long> _decisions;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _outages;
    private readonly Counter<long> _recoveries;

    public RateLimitMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _decisions = meter.CreateCounter<long>("shopreference.ratelimit.decisions", "{decision}", "Rate-limit decisions by policy and outcome (allowed, rejected, unavailable) and source (valkey, fallback).");
        _duration = meter.CreateHistogram<double>("shopreference.ratelimit.decision.duration", "ms", "Time to decide, including the Valkey round trip.");
        _outages = meter.CreateCounter<long>("shopreference.ratelimit.fallback.activations", "{activation}", "Times a policy lost Valkey and switched to its outage behaviour.");
        _recoveries = meter.CreateCounter<long>("shopreference.ratelimit.fallback.recoveries", "{recovery}", "Times a policy switched back to Valkey.");
    }

    public void Decision(string policy, string outcome, bool degraded, double milliseconds)
    {
        var tags = new TagList { { "policy", policy }, { "outcome", outcome }, { "source", degraded ? "fallback" : "valkey" } };
        _decisions.Add(1, tags);
        _duration.Record(milliseconds, new TagList { { "policy", policy } });
    }

    public void OutageStarted(string policy) => _outages.Add(1, new TagList { { "policy", policy } });
    public void OutageEnded(string policy) => _recoveries.Add(1, new TagList { { "policy", policy } });
}
