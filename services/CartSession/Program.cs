using ShopReference.CartSession.Apis;
using ShopReference.CartSession.Extensions;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddApplicationServices();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapCartApi();

app.Run();
