using ShopReference.CartSession.Apis;
using ShopReference.CartSession.Extensions;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddApplicationServices();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapApiDocuments("cart");
app.UseSession(); // only the preferences routes touch it (the ASP.NET Session comparison)
app.MapCartApi();
app.MapCartAdminApi();

app.Run();
