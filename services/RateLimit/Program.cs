using ShopReference.RateLimit.Apis;
using ShopReference.RateLimit.Extensions;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddApplicationServices();

var app = builder.Build();

app.WarnWithoutTrustedProxies();
app.MapDefaultEndpoints();
app.MapApiDocuments("ratelimit");
app.UseGatewayRateLimiting();
app.MapRateLimitApi();
app.MapTokenApi();
app.MapReverseProxy();

app.Run();
