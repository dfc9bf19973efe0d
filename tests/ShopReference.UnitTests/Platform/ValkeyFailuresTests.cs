using ShopReference.Valkey.Resilience;
using StackExchange.Redis;

namespace ShopReference.UnitTests.Platform;

/// <summary>The one definition of "Valkey cannot serve this now": transient replies and lost connections, nothing else.</summary>
public sealed class ValkeyFailuresTests
{
    [Theory]
    [InlineData("LOADING Valkey is loading the dataset in memory")]
    [InlineData("BUSY Valkey is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")]
    [InlineData("READONLY You can't write against a read only replica.")]
    [InlineData("OOM command not allowed when used memory > 'maxmemory'.")]
    [InlineData("OOM command not allowed when used memory > 'maxmemory'. script: 3700eacc, on @user_script:1.")]
    [InlineData("ERR Error running script (call to f_3700eacc): @user_script:1: OOM command not allowed when used memory > 'maxmemory'.")]
    [InlineData("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.")]
    [InlineData("CLUSTERDOWN The cluster is down")]
    [InlineData("TRYAGAIN Multiple keys request during rehashing of slot")]
    [InlineData("NOREPLICAS Not enough good replicas to write.")]
    [InlineData("MISCONF Errors writing to the AOF file")]
    public void A_transient_refusal_is_unavailable(string reply) =>
        Assert.True(ValkeyFailures.IsUnavailable(new RedisServerException(reply)));

    [Theory]
    [InlineData("NOPERM this user has no permissions to run the 'flushall' command")]
    [InlineData("WRONGTYPE Operation against a key holding the wrong kind of value")]
    [InlineData("ERR Error running script (call to f_1): @user_script:3: attempt to compare nil with number")]
    [InlineData("NOSCRIPT No matching script. Please use EVAL.")]
    [InlineData("ERR unknown command 'DELIFEQ'")]
    [InlineData("BUSYGROUP Consumer Group name already exists")]
    public void A_defect_is_not_unavailable(string reply) =>
        Assert.False(ValkeyFailures.IsUnavailable(new RedisServerException(reply)));

    [Fact]
    public void Lost_connections_and_timeouts_are_unavailable_also_when_wrapped()
    {
        var lost = new RedisConnectionException(ConnectionFailureType.SocketClosed, "SocketClosed");
        Assert.True(ValkeyFailures.IsUnavailable(lost));
        Assert.True(ValkeyFailures.IsUnavailable(new RedisTimeoutException("Timeout awaiting response", CommandStatus.Sent)));
        Assert.True(ValkeyFailures.IsUnavailable(new AggregateException(lost)));
        Assert.False(ValkeyFailures.IsUnavailable(new AggregateException(lost, new InvalidOperationException())));
        Assert.False(ValkeyFailures.IsUnavailable(new InvalidOperationException("not Valkey")));
    }

    [Fact]
    public void A_busy_server_is_asked_again_sooner()
    {
        Assert.Equal(TimeSpan.FromSeconds(1), ValkeyFailures.RetryAfter(new RedisServerException("BUSY running a script")));
        Assert.Equal(TimeSpan.FromSeconds(5), ValkeyFailures.RetryAfter(new RedisServerException("LOADING")));
    }
}
