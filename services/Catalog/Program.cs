using ShopReference.Catalog.Apis;
using ShopReference.Catalog.Extensions;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddApplicationServices();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapApiDocuments("catalog");
app.UseOutputCache();
app.MapCatalogApi();

app.Run();
