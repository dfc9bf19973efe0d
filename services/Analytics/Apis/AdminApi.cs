using Microsoft.AspNetCore.Http.HttpResults;
using ShopReference.Analytics.Data;
using ShopReference.Contracts.Events;
using ShopReference.Analytics.Counting;
using StackExchange.Redis;

namespace ShopReference.Analytics.Apis;

public sealed record Replayed(int Events);
public sealed record Rebuilt(int Buckets);
public sealed record RolledUp(int Hours);

/// <summary>
/// Operator actions behind the dashboard commands (permission <c>operator</c>, enforced here). They also live outside
/// <c>/api</c>, so the gateway (which routes only <c>/api/analytics/**</c>) never exposes them.
/// </summary>
public static class AdminApi
{
    public const int MaxReplay = 10_000;

    public static IEndpointRouteBuilder MapAnalyticsAdminApi(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("admin").WithTags("Analytics operations").RequireAuthorization(Permissions.Operator);
        admin.MapPost("events/replay", ReplayAsync).WithSummary("Re-sends the last N stream entries unchanged; their ids make every one a skipped duplicate.");
        admin.MapPost("leaderboards/rebuild", RebuildAsync).WithSummary("Restores the hourly buckets of the last 8 days from PostgreSQL.");
        admin.MapPost("rollup", RollUpAsync).WithSummary("Writes the changed hours to PostgreSQL now, instead of at the next interval.");
        return app;
    }

    public static async Task<Results<Ok<Replayed>, ValidationProblem>> ReplayAsync(int? count, IConnectionMultiplexer multiplexer)
    {
        if (count is not (>= 1 and <= MaxReplay))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["count"] = [$"1 to {MaxReplay}."] });
        }
        var database = multiplexer.GetDatabase();
        var last = await database.StreamRangeAsync(EventStream.Key, "-", "+", count, Order.Descending);
        var batch = database.CreateBatch();
        var adds = last.Reverse().Select(e => batch.StreamAddAsync(EventStream.Key, e.Values, maxLength: EventPublisher.StreamMaxLength, useApproximateMaxLength: true)).ToArray();
        batch.Execute();
        await Task.WhenAll(adds);
        return TypedResults.Ok(new Replayed(adds.Length));
    }

    public static async Task<Ok<Rebuilt>> RebuildAsync(Rollups rollups, CancellationToken cancellationToken) =>
        TypedResults.Ok(new Rebuilt(await rollups.RebuildAsync(cancellationToken)));

    public static async Task<Ok<RolledUp>> RollUpAsync(Rollups rollups, CancellationToken cancellationToken) =>
        TypedResults.Ok(new RolledUp(await rollups.RollUpAsync(cancellationToken)));
}
