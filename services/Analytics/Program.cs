using ShopReference.Analytics.Apis;
using ShopReference.Analytics.Extensions;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddApplicationServices();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapApiDocuments("analytics");
app.MapAnalyticsApi();
app.MapAnalyticsAdminApi();

app.Run();
