using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using ShopReference.ServiceClients;
using ShopReference.Contracts.Events;
using ShopReference.Analytics.Counting;
using StackExchange.Redis;

namespace ShopReference.Analytics.Apis;

/// <summary>
/// What an outside client may report: that it viewed a product. Nothing else: the id, the time and the visitor are the
/// server's, and any other member (an id, a timestamp, order lines) makes the body a 400.
/// </summary>
[System.Text.Json.Serialization.JsonUnmappedMemberHandling(System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow)]
public sealed record EventRequest(string? Type, long? ProductId);
public sealed record Accepted(string Id);
public sealed record RankedEntry(int Rank, long ProductId, long Count);
public sealed record Leaderboard(string Board, string Window, IReadOnlyList<RankedEntry> Entries);
public sealed record Uniques(DateOnly Day, int Days, long Visitors, double StandardError);
public sealed record Point(DateTime Minute, long Value);
public sealed record TimeSeries(string Metric, IReadOnlyList<Point> Points);

public static class AnalyticsApi
{
    /// <summary>The largest event body accepted; a bigger one is a 413 (announced or found while reading a chunked one).</summary>
    public const int MaxEventBytes = 4096;

    public static IEndpointRouteBuilder MapAnalyticsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("api/analytics").WithTags("Analytics");
        api.MapPost("events", PostEventAsync).WithName("PostEvent")
            .WithSummary("Records that the caller viewed a product of the catalog (type product.viewed only, through the gateway only: 403 without its client context); 202 with the id the server gave it.")
            .Accepts<EventRequest>("application/json")
            .WithRequestBodyLimit(MaxEventBytes);
        api.MapGet("leaderboards/{board}", GetLeaderboardAsync).WithName("GetLeaderboard")
            .WithSummary("Top products of a board (most-viewed, best-selling) over 1h, 24h or 7d; ties by product id.");
        api.MapGet("uniques", GetUniquesAsync).WithName("GetUniques").WithSummary("Estimated unique visitors on a day (or the days ending then), by HyperLogLog.");
        api.MapGet("timeseries/{metric}", GetTimeSeriesAsync).WithName("GetTimeSeries").WithSummary("Per-minute counts of a metric for the last minutes.");
        api.MapWiringEndpoint("", "analytics");
        return app;
    }

    public static async Task<Results<Accepted<Accepted>, ValidationProblem, ProblemHttpResult>> PostEventAsync(
        EventPublisher publisher, CatalogClient catalog, TimeProvider time, HttpContext http)
    {
        // The body is read here, not bound: malformed JSON and unknown members are a 400 that names the problem, and a
        // chunked body that grows past the route's limit a 413, before anything else happens.
        EventRequest? body;
        string? badField;
        try
        {
            (body, badField) = await ReadEventAsync(http);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return TypedResults.Problem($"An event is at most {MaxEventBytes} bytes.", statusCode: StatusCodes.Status413PayloadTooLarge);
        }
        if (badField is not null and not "body")
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { [badField] = [$"Not a valid value for '{badField}'."] });
        }
        if (body is null)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["body"] = [$"One JSON object {{\"type\":\"{EventTypes.ProductViewed}\",\"productId\":…}} of at most {MaxEventBytes} bytes is required."],
            });
        }
        var errors = new Dictionary<string, string[]>();
        if (body.Type is not (null or EventTypes.ProductViewed)) errors["type"] = [$"Only {EventTypes.ProductViewed} is accepted from outside; orders and cart events come from the services that own them."];
        if (body.ProductId is not > 0) errors["productId"] = ["A positive product id is required."];
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }
        // Only products the catalog holds: the leaderboards' members stay bounded by the catalog, not by what clients invent.
        try
        {
            if (await catalog.GetAsync(body.ProductId!.Value, http.RequestAborted) is null)
            {
                return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["productId"] = [$"The catalog has no product {body.ProductId}."] });
            }
        }
        catch (DependencyUnavailableException ex)
        {
            throw ex.WithDetail("The catalog cannot confirm the product right now; the event was not accepted.");
        }
        // The visitor is the gateway's signed client context, never the caller's word: a request that did not come
        // through the gateway is nobody's view.
        if (await ClientContext.FromAsync(http) is not { } client)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Views are recorded only through the gateway",
                detail: $"The request carries no valid {ShopAuthentication.ClientContextHeader} client context, so it names no visitor.");
        }
        var analyticsEvent = new AnalyticsEvent(EventRules.NewId(), EventTypes.ProductViewed, time.GetUtcNow(), client.Visitor, body.ProductId);
        if (!await publisher.PublishAsync(analyticsEvent))
        {
            throw new DependencyUnavailableException("The event stream is unavailable; the event was not accepted.", TimeSpan.FromSeconds(5));
        }
        return TypedResults.Accepted((string?)null, new Accepted(analyticsEvent.Id));
    }

    public static async Task<Results<Ok<Leaderboard>, ValidationProblem, ProblemHttpResult>> GetLeaderboardAsync(
        string board, string? window, int? top, Leaderboards leaderboards, HttpContext http)
    {
        var errors = new Dictionary<string, string[]>();
        if (!Boards.Names.TryGetValue(board, out var key)) errors["board"] = [$"One of {string.Join(", ", Boards.Names.Keys)}."];
        window ??= "24h";
        if (!Boards.Windows.ContainsKey(window)) errors["window"] = [$"One of {string.Join(", ", Boards.Windows.Keys)}."];
        top ??= 10;
        if (top is < 1 or > Boards.MaxTop) errors["top"] = [$"1 to {Boards.MaxTop}."];
        if (errors.Count > 0) return (Results<Ok<Leaderboard>, ValidationProblem, ProblemHttpResult>)TypedResults.ValidationProblem(errors);
        var entries = await leaderboards.TopAsync(key!, window, top.Value, http.RequestAborted);
        return TypedResults.Ok(new Leaderboard(board, window, [.. entries.Select((e, i) => new RankedEntry(i + 1, e.ProductId, e.Count))]));
    }

    public static async Task<Results<Ok<Uniques>, ValidationProblem, ProblemHttpResult>> GetUniquesAsync(
        string? day, int? days, AnalyticsReads reads, TimeProvider time, HttpContext http)
    {
        var errors = new Dictionary<string, string[]>();
        var date = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
        if (day is not null && !DateOnly.TryParseExact(day, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out date))
            errors["day"] = ["A date as yyyy-MM-dd (UTC)."];
        days ??= 1;
        if (days is < 1 or > AnalyticsReads.MaxDays) errors["days"] = [$"1 to {AnalyticsReads.MaxDays}."];
        if (errors.Count > 0) return (Results<Ok<Uniques>, ValidationProblem, ProblemHttpResult>)TypedResults.ValidationProblem(errors);
        return TypedResults.Ok(new Uniques(date, days.Value, await reads.UniqueVisitorsAsync(date, days.Value), 0.0081));
    }

    public static async Task<Results<Ok<TimeSeries>, ValidationProblem, ProblemHttpResult>> GetTimeSeriesAsync(
        string metric, int? minutes, AnalyticsReads reads, HttpContext http)
    {
        var errors = new Dictionary<string, string[]>();
        if (!AnalyticsReads.Metrics.ContainsKey(metric)) errors["metric"] = [$"One of {string.Join(", ", AnalyticsReads.Metrics.Keys)}."];
        minutes ??= 60;
        if (minutes is < 1 or > AnalyticsReads.MaxMinutes) errors["minutes"] = [$"1 to {AnalyticsReads.MaxMinutes}."];
        if (errors.Count > 0) return (Results<Ok<TimeSeries>, ValidationProblem, ProblemHttpResult>)TypedResults.ValidationProblem(errors);
        var points = await reads.MinutesAsync(metric, minutes.Value);
        return TypedResults.Ok(new TimeSeries(metric, [.. points.Select(p => new Point(p.Minute, p.Value))]));
    }

    // The event, or the field that could not be read (body: the whole of it).
    private static async Task<(EventRequest? Body, string? BadField)> ReadEventAsync(HttpContext http)
    {
        if (!http.Request.HasJsonContentType())
        {
            return (null, "body");
        }
        try
        {
            return (await http.Request.ReadFromJsonAsync<EventRequest>(http.RequestAborted), null);
        }
        catch (System.Text.Json.JsonException ex)
        {
            return (null, BadRequestHandler.FieldOf(ex));
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode != StatusCodes.Status413PayloadTooLarge)
        {
            return (null, "body");
        }
    }
}
