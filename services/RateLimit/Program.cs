using ShopReference.RateLimit.Extensions;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddApplicationServices();

var app = builder.Build();
app.MapApplication();
app.Run();
