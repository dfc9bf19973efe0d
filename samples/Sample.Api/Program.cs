using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Sample.Api;
using ShopReference.Valkey.Caching;
using ShopReference.Valkey.RateLimiting;
using ShopReference.Valkey.Resilience;
using StackExchange.Redis;

var builder = WebApplication.CreateBuilder(args);

// One multiplexer from ConnectionStrings:valkey, with Aspire's health check and traces. The options let a user that
// owns only sample:* connect without refusals (no tie-breaker key, configuration channel, INFO or CONFIG).
builder.AddRedisClient("valkey", configureOptions: options =>
{
    options.AbortOnConnectFail = false;
    options.BacklogPolicy = BacklogPolicy.FailFast;
    options.TieBreaker = "";
    options.ConfigurationChannel = "";
    options.CommandMap = CommandMap.Create(new HashSet<string> { "INFO", "CONFIG" }, available: false);
});
builder.Services.AddProblemDetails();

var settings = builder.Configuration.GetSection("Sample");
builder.Services.AddSingleton(new ProductOrigin(settings.GetValue("OriginLatency", TimeSpan.FromMilliseconds(200))));
builder.Services.AddSingleton(sp => new SingleFlightCache(
    sp.GetRequiredService<IConnectionMultiplexer>(), new SingleFlightOptions { Channel = "sample:cache:filled" }));

// Reads per client address per minute, counted in Valkey so every replica of this service shares one count.
var readLimit = new ValkeyRateLimiterOptions
{
    KeyPrefix = "sample:ratelimit", PermitLimit = settings.GetValue("ReadsPerMinute", 60), Window = TimeSpan.FromMinutes(1),
};
builder.Services.AddRateLimiter(_ => { });
builder.Services.AddOptions<RateLimiterOptions>().Configure<IConnectionMultiplexer>((options, valkey) =>
{
    options.AddPolicy("reads", http => RateLimitPartition.Get(
        http.Connection.RemoteIpAddress?.ToString() ?? "unknown",
        client => ValkeyRateLimiters.Create(RateLimitAlgorithm.SlidingWindowLog, valkey.GetDatabase(), client, readLimit)));
    options.OnRejected = (context, cancellationToken) =>
    {
        if (context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter))
        {
            context.HttpContext.Response.Headers.RetryAfter = ((int)Math.Ceiling(retryAfter.TotalSeconds)).ToString();
        }
        context.HttpContext.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        return new ValueTask(Results.Problem(statusCode: 429, title: "Too many requests").ExecuteAsync(context.HttpContext));
    };
});

var app = builder.Build();
// Valkey down or unreachable: a 503 ProblemDetails the client may retry, never a hang (FailFast above) or a 500.
app.UseExceptionHandler(new ExceptionHandlerOptions
{
    StatusCodeSelector = exception => ValkeyFailures.IsUnavailable(exception) ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status500InternalServerError,
});
app.UseRateLimiter();

app.MapGet("/products/{id:long}", async (long id, SingleFlightCache cache, ProductOrigin origin, HttpResponse response, CancellationToken cancellationToken) =>
{
    // The id sits in braces: the key's hash tag, so the script's lock and value keys share a cluster slot.
    var read = await cache.GetOrLoadAsync($"sample:product:{{{id}}}", ct => origin.LoadAsync(id, ct),
        new CacheEntryOptions { TimeToLive = TimeSpan.FromMinutes(5) }, cancellationToken);
    response.Headers["X-Cache"] = read.Outcome.ToString();
    return read.Found ? Results.Bytes(read.Payload!, "application/json") : Results.Problem(statusCode: 404, title: "No such product");
}).RequireRateLimiting("reads");

app.MapGet("/stats", (ProductOrigin origin) => new { originLoads = origin.Loads });

app.Run();
