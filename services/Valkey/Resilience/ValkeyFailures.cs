using StackExchange.Redis;

namespace ShopReference.Valkey.Resilience;

/// <summary>
/// The one definition of "Valkey cannot serve this now", used by every service and primitive: the connection is down
/// or timed out, or the server answered with a transient refusal — still loading its data (<c>LOADING</c>), running a
/// long script (<c>BUSY</c>), a replica or a demoted primary (<c>READONLY</c>), out of memory under <c>noeviction</c>
/// (<c>OOM</c>), its primary or cluster down (<c>MASTERDOWN</c>, <c>CLUSTERDOWN</c>), a slot moving (<c>TRYAGAIN</c>),
/// too few replicas (<c>NOREPLICAS</c>) or a failing disk (<c>MISCONF</c>). Each is worth a retry later; none is a bug
/// in the caller. Anything else (a script error, <c>NOPERM</c>, a wrong type) is a defect and stays a 500.
/// </summary>
public static class ValkeyFailures
{
    private static readonly string[] TransientReplies =
        ["LOADING", "BUSY", "READONLY", "OOM", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS", "MISCONF"];

    /// <summary>True when the exception says Valkey could not serve the command now (connection, timeout, or a transient reply such as LOADING or CLUSTERDOWN); false for a defect (a permission, a wrong type, a script error).</summary>
    public static bool IsUnavailable(Exception exception) => exception switch
    {
        RedisConnectionException or RedisTimeoutException => true,
        RedisServerException server => IsTransientReply(server.Message),
        // Cursor enumerations (SCAN, ZSCAN) surface a failed page wrapped in an AggregateException.
        AggregateException aggregate => aggregate.Flatten().InnerExceptions.Count > 0 && aggregate.Flatten().InnerExceptions.All(IsUnavailable),
        // A script that failed on a transient reply is reported with the reply inside its message.
        RedisException { InnerException: { } inner } => IsUnavailable(inner),
        _ => false,
    };

    /// <summary>How long a client should wait before retrying, by what went wrong.</summary>
    public static TimeSpan RetryAfter(Exception exception) => exception is RedisServerException server && server.Message.StartsWith("BUSY", StringComparison.Ordinal)
        ? TimeSpan.FromSeconds(1)
        : TimeSpan.FromSeconds(5);

    private static bool IsTransientReply(string message)
    {
        // A reply inside a script error reads "ERR Error running script … : OOM command not allowed …" (Redis 7) or
        // starts with the code itself; look for the code as a word at the start of the message or after ": ".
        foreach (var code in TransientReplies)
        {
            if (message.StartsWith(code + " ", StringComparison.Ordinal) || message == code ||
                message.Contains(": " + code + " ", StringComparison.Ordinal) || message.Contains("-" + code + " ", StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }
}
