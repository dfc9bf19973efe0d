using ShopReference.Valkey;

namespace ShopReference.UnitTests.Platform;

public sealed class KeySchemaTests
{
    [Fact]
    public void A_numeric_id_key_follows_service_entity_id()
    {
        Assert.Equal("catalog:product:42", KeySchema.Key("catalog", "product", 42));
    }

    [Fact]
    public void A_user_token_never_becomes_part_of_a_key()
    {
        var key = KeySchema.HashedKey("cart", "session", "user-controlled token with spaces");

        Assert.DoesNotContain("token", key);
        Assert.Matches("^cart:session:[0-9a-f]{64}$", key);
    }

    [Fact]
    public void A_tagged_key_puts_its_id_in_one_cluster_slot()
    {
        Assert.Equal("ratelimit:window:{client-1}", KeySchema.TaggedKey("ratelimit", "window", "client-1"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("brace}")]
    public void A_hash_tag_that_could_break_slotting_is_refused(string tag)
    {
        Assert.Throws<ArgumentException>(() => KeySchema.TaggedKey("ratelimit", "window", tag));
    }
}
