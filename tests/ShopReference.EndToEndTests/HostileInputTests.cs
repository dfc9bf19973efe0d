using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using Npgsql;
using ShopReference.Contracts.Events;
using ShopReference.Valkey;
using StackExchange.Redis;

using ShopReference.Testing;

namespace ShopReference.EndToEndTests;

/// <summary>
/// Every operation of every service, read from each service's whole OpenAPI document (operator routes included), is sent
/// malformed, oversized, wrong-typed, missing and boundary values in each path, query, header and body field, with a
/// token that holds every permission and the gateway's client context, so that credentials are not what refuses them.
/// Each operation's request is first sent unmutated and must succeed (2xx): a value the test gets wrong would otherwise
/// refuse every case for a reason of its own, and a gap in the rules would pass. Hand-picked values for every field
/// follow, then random ones generated (and shrunk on failure) by CsCheck. Asserted: no 5xx, every 4xx a ProblemDetails,
/// a 400 for a mutated field or parameter names it, and a refused write changes nothing (products, orders, the test's
/// cart, and no event of the case's own visitor in the stream).
/// </summary>
[Collection(ShopAppCollection.Name)]
public sealed class HostileInputTests(ShopAppFixture fixture) : IDisposable
{
    private static readonly string[] Services = ["catalog", "cart-session", "analytics", "rate-limit"];

    private static readonly string[] HostileText =
    [
        "", " ", "0", "-1", "1", "2147483648", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
        "1.5", "1e309", "NaN", "true", "null", "abc", "%00", "../../etc/passwd", "<script>alert(1)</script>",
        "' or 1=1 --", "{1}", "a,b", "🙂", "\u0000", "\u202e", "\r\nX-Injected: 1", new string('9', 1000), new string('x', 2000),
    ];

    /// <summary>Headers the services read by hand (so the OpenAPI documents do not list them), sent hostile on every operation.</summary>
    private static readonly string[] ReadHeaders = ["If-Match", "If-None-Match", "Idempotency-Key", "Cookie", "X-Shop-Client", "X-Api-Key"];

    private static readonly JsonNode?[] HostileJson =
    [
        null, JsonValue.Create(""), JsonValue.Create("abc"), JsonValue.Create(-1), JsonValue.Create(0), JsonValue.Create(2147483648L),
        JsonValue.Create(-9223372036854775808L), JsonValue.Create(1e300), JsonValue.Create(0.001m), JsonValue.Create(true),
        new JsonArray(), new JsonObject(), JsonValue.Create(new string('x', 5000)), JsonValue.Create("\u0000🙂"),
    ];

    /// <summary>The product the writes go to (catalog update, cart lines, views, checkout): one no other test reads.</summary>
    private const long Target = 9977;

    /// <summary>The request unmutated: every place holds a value its rules accept.</summary>
    private static readonly Case Unmutated = new("none", "", null);

    private ShopApp Shop => fixture.Shop;
    private CancellationToken Ct => TestContext.Current.CancellationToken;
    private int _cases;
    private string _cartCookie = "";
    private Credentials _credentials = new("", "");
    private readonly Dictionary<string, HttpClient> _clients = new(StringComparer.Ordinal);

    [Fact]
    public async Task Every_operation_answers_hostile_input_with_a_4xx_problem_never_a_5xx_and_a_refused_write_changes_nothing()
    {
        // One real cart, sent on every request, so a refused cart change that slipped through would show in it.
        using (var cart = CartHttp.Client(Shop.App.GetEndpoint("cart-session", "http")))
        using (var started = await cart.SendAsync(HttpMethod.Post, "/api/cart/items", null, new { productId = 5, quantity = 2 }, Ct))
        {
            _cartCookie = CartHttp.SetCookie(started)!;
        }
        // Every permission, so that what refuses a case is its input, not its credentials.
        var token = NewCredentials().Token;
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await Shop.App.GetConnectionStringAsync("valkey", Ct) ?? "");

        var operations = new List<Operation>();
        foreach (var resource in Services)
        {
            // The whole document, operator routes included (the public one leaves them out), straight at the service.
            using var http = resource == "rate-limit" ? Shop.GatewayAsNewClient(out _) : Shop.App.CreateHttpClient(resource);
            using var request = new HttpRequestMessage(HttpMethod.Get, Microsoft.Extensions.Hosting.Extensions.InternalDocumentPath);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await http.SendAsync(request, Ct);
            response.EnsureSuccessStatusCode();
            using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct));
            operations.AddRange(Operation.Read(resource, document.RootElement));
        }
        Assert.True(operations.Count >= 20, $"only {operations.Count} operations found in the documents");

        // The token endpoint takes a form: its valid one is this client's credentials, sent as form fields.
        operations = [.. operations.Select(o => o.BodyType == "application/x-www-form-urlencoded"
            ? o with { Body = new JsonObject { ["grant_type"] = "client_credentials", ["client_id"] = "dashboard", ["client_secret"] = Shop.DemoApiKey } }
            : o)];

        foreach (var operation in operations)
        {
            _credentials = NewCredentials(); // minted per operation: each lives a few minutes
            await CheckAsync(operation, Unmutated, valkey.GetDatabase());
            foreach (var hostile in operation.FixedCases(HostileText, HostileJson, ReadHeaders))
            {
                await CheckAsync(operation, hostile, valkey.GetDatabase());
            }
            await Gen.OneOf(operation.RandomCases(ReadHeaders).ToArray())
                .SampleAsync(hostile => CheckAsync(operation, hostile, valkey.GetDatabase()), iter: 25, threads: 1);
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"{_cases} hostile cases sent to {operations.Count} operations: 0 × 5xx.");
        TestContext.Current.SendDiagnosticMessage($"Hostile-input suite: {_cases} cases, {operations.Count} operations, 0 × 5xx.");
    }

    public void Dispose()
    {
        foreach (var client in _clients.Values) client.Dispose();
    }

    private string CartKey => KeySchema.TaggedKey("cart", "session", KeySchema.Sha256Hex(_cartCookie.Split('=', 2)[1])); // CartStore.Key

    private HttpClient ServiceClient(string resource)
    {
        if (!_clients.TryGetValue(resource, out var client))
        {
            _clients[resource] = client = CartHttp.Client(Shop.App.GetEndpoint(resource, "http"));
        }
        return client;
    }

    private Credentials NewCredentials() => new(
        Forgery.Token(Shop.SigningKey, "shopreference-api", ("sub", "fuzzer"), ("client_id", "fuzzer"), ("permission", new[] { "catalog.write", "operator" })),
        ClientContext("fuzzer-visitor"));

    private string ClientContext(string visitor) =>
        Forgery.Token(Shop.SigningKey, Microsoft.Extensions.Hosting.ShopAuthentication.ClientContextAudience,
            (Microsoft.Extensions.Hosting.ShopAuthentication.VisitorClaim, visitor), (Microsoft.Extensions.Hosting.ShopAuthentication.SchemeClaim, "http"));

    private async Task CheckAsync(Operation operation, Case hostile, IDatabase valkey)
    {
        // Each case is a visitor of its own: an event it caused carries its id, so the stream check below finds this
        // case's events among the ones earlier requests still append in the background (views, cart events, the outbox).
        var visitor = $"fuzz-case-{Interlocked.Increment(ref _cases)}";
        var writes = operation.Method is "POST" or "PUT" or "PATCH" or "DELETE";
        var headers = await PrepareAsync(operation, valkey);
        var before = writes ? await StateAsync(valkey) : null;
        var lastEvent = writes ? (await valkey.StreamRangeAsync(EventStream.Key, "-", "+", count: 1, messageOrder: Order.Descending)).FirstOrDefault().Id : RedisValue.Null;

        // Straight to the service with the cookies this test sets by hand (a client with a cookie jar would drop them);
        // to the gateway from an address of its own per case, so that no quota refuses a case.
        using var gateway = operation.Resource == "rate-limit" ? Shop.GatewayAsNewClient(out _) : null;
        var http = gateway ?? ServiceClient(operation.Resource);
        using var request = operation.Build(hostile, _credentials with { ClientContext = ClientContext(visitor) }, _cartCookie, headers);
        using var response = await http.SendAsync(request, Ct);
        var status = (int)response.StatusCode;
        var what = $"{operation.Method} {operation.Path} with {hostile}: {status}";
        var text = await response.Content.ReadAsStringAsync(Ct);

        Assert.True(status < 500, what + " " + text);
        if (hostile == Unmutated)
        {
            Assert.True(status is >= 200 and < 300, $"{operation.Method} {operation.Path} unmutated: {status} {text}");
        }
        if (status >= 400)
        {
            Assert.True(response.Content.Headers.ContentType?.MediaType == "application/problem+json", what + " without a ProblemDetails body");
            if (status == 400 && hostile.Slot is "field" or "field-missing" or "query" or "path")
            {
                Assert.True(Names(text, hostile.Name), $"{what}: the 400 does not name '{hostile.Name}': {text}");
            }
            if (writes)
            {
                Assert.True(before == await StateAsync(valkey), what + " changed state");
                var appended = await valkey.StreamRangeAsync(EventStream.Key, lastEvent.IsNull ? "-" : "(" + lastEvent, "+");
                Assert.True(!appended.Any(e => e["visitor"] == visitor), what + " appended an event to the stream");
            }
        }
    }

    // What the unmutated request needs beforehand: the target product's current ETag for an update, a line to check out,
    // and no line of it to add to (adds accumulate: the 99th would be refused for the line's limit, not for its input).
    // The cart's line is set in Valkey itself: a change through the API would also append an event to the stream after
    // this returns, which the state compared below would take for the refused request's doing.
    private async Task<Dictionary<string, string>> PrepareAsync(Operation operation, IDatabase valkey)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (operation.Method == "PUT" && operation.Path.Contains("/products/", StringComparison.Ordinal))
        {
            using var catalog = Shop.App.CreateHttpClient("catalog");
            using var current = await catalog.GetAsync($"/api/catalog/products/{Target}", Ct);
            current.EnsureSuccessStatusCode();
            headers["If-Match"] = current.Headers.ETag!.ToString();
        }
        if (operation.Path.EndsWith("/checkout", StringComparison.Ordinal))
        {
            await valkey.HashSetAsync(CartKey, $"p:{Target}", 1); // cart.lua's line field
        }
        else if (operation.Resource == "cart-session" && operation.Path.Contains("/items", StringComparison.Ordinal))
        {
            await valkey.HashDeleteAsync(CartKey, $"p:{Target}");
        }
        return headers;
    }

    // A 400 names the place it refuses: a key of its errors, or its detail (the token endpoint's RFC 6749 errors).
    private static bool Names(string problem, string name)
    {
        using var json = JsonDocument.Parse(problem);
        if (json.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Object)
        {
            return errors.EnumerateObject().Any(e => e.Name.Equals(name, StringComparison.OrdinalIgnoreCase));
        }
        return json.RootElement.TryGetProperty("detail", out var detail) && detail.GetString()?.Contains(name, StringComparison.OrdinalIgnoreCase) == true;
    }

    // What a refused write must not change: every product's version, the orders and the test's cart (the event stream is
    // checked by the case's own visitor id).
    private async Task<string> StateAsync(IDatabase valkey)
    {
        await using var catalog = new NpgsqlConnection(await Shop.App.GetConnectionStringAsync("catalogdb", Ct));
        await catalog.OpenAsync(Ct);
        await using var products = new NpgsqlCommand("select md5(string_agg(id || ':' || version || ':' || price, ',' order by id)) from products", catalog);
        await using var cart = new NpgsqlConnection(await Shop.App.GetConnectionStringAsync("cartdb", Ct));
        await cart.OpenAsync(Ct);
        await using var orders = new NpgsqlCommand("select count(*) from orders", cart);
        var lines = await valkey.HashGetAllAsync(CartKey);
        return $"{await products.ExecuteScalarAsync(Ct)}|{await orders.ExecuteScalarAsync(Ct)}|" +
            string.Join(",", lines.Where(l => l.Name != "s").OrderBy(l => (string?)l.Name, StringComparer.Ordinal).Select(l => $"{l.Name}={l.Value}"));
    }

    private sealed record Credentials(string Token, string ClientContext);

    /// <summary>One hostile value in one place: a path, query or header parameter, a body field, or the whole body.</summary>
    private sealed record Case(string Slot, string Name, string? Text, JsonNode? Json = null, string? RawBody = null, string? ContentType = null)
    {
        public override string ToString() =>
            $"{Slot} '{Name}' = {Describe(Text ?? RawBody ?? Json?.ToJsonString() ?? "null")}";

        private static string Describe(string value) => value.Length > 60 ? JsonSerializer.Serialize(value[..60]) + $"… ({value.Length} chars)" : JsonSerializer.Serialize(value);
    }

    private sealed record Parameter(string Name, string In, string Type);

    /// <summary>An operation as its OpenAPI document describes it, with a plausible request to mutate one place of.</summary>
    private sealed record Operation(string Resource, string Method, string Path, IReadOnlyList<Parameter> Parameters, JsonObject? Body, string? BodyType)
    {
        public static IEnumerable<Operation> Read(string resource, JsonElement document)
        {
            var schemas = document.TryGetProperty("components", out var components) && components.TryGetProperty("schemas", out var s) ? s : default;
            foreach (var path in document.GetProperty("paths").EnumerateObject())
            {
                foreach (var method in path.Value.EnumerateObject().Where(m => m.Name is "get" or "put" or "post" or "delete" or "patch"))
                {
                    var parameters = method.Value.TryGetProperty("parameters", out var list)
                        ? list.EnumerateArray().Select(p => new Parameter(p.GetProperty("name").GetString()!, p.GetProperty("in").GetString()!, TypeOf(p.GetProperty("schema"), schemas))).ToList()
                        : [];
                    JsonObject? body = null;
                    string? bodyType = null;
                    if (method.Value.TryGetProperty("requestBody", out var requestBody))
                    {
                        var content = requestBody.GetProperty("content").EnumerateObject().First();
                        bodyType = content.Name;
                        body = Example(content.Value.TryGetProperty("schema", out var schema) ? schema : default, schemas);
                    }
                    yield return new Operation(resource, method.Name.ToUpperInvariant(), path.Name, parameters, body, bodyType);
                }
            }
        }

        /// <summary>Every hand-picked value in every place.</summary>
        public IEnumerable<Case> FixedCases(string[] text, JsonNode?[] json, string[] headers)
        {
            foreach (var parameter in Parameters)
            {
                // A NUL in the request target is refused by the HTTP server itself, before any application code runs.
                foreach (var value in text.Where(v => parameter.In != "path" || !v.Contains('\u0000')))
                {
                    yield return new Case(parameter.In, parameter.Name, value);
                }
                if (parameter.In == "query")
                {
                    yield return new Case("query-twice", parameter.Name, "1");
                }
            }
            foreach (var header in headers)
            {
                // A header can only carry visible ASCII and spaces on the wire; anything else never leaves the client.
                foreach (var value in text.Where(v => v.All(c => c is >= ' ' and <= '~')))
                {
                    yield return new Case("header", header, value);
                }
            }
            if (BodyType is null)
            {
                yield break;
            }
            foreach (var (raw, type) in new (string, string?)[]
            {
                ("", BodyType), ("{ not json", BodyType), ("[]", BodyType), ("null", BodyType), ("\"text\"", BodyType),
                (new string('[', 200) + new string(']', 200), BodyType), ("{\"a\":" + new string('1', 100_000) + "}", BodyType),
                ("[" + string.Join(",", Enumerable.Repeat("{\"x\":1}", 100_000)) + "]", BodyType),
                (Body?.ToJsonString() ?? "{}", "text/plain"), (Body?.ToJsonString() ?? "{}", null),
                ("grant_type=client_credentials&grant_type=password", "application/x-www-form-urlencoded"),
            })
            {
                yield return new Case("body", "(whole)", null, RawBody: raw, ContentType: type);
            }
            foreach (var field in Body?.Select(p => p.Key).Append("unexpected") ?? [])
            {
                foreach (var value in json)
                {
                    yield return new Case("field", field, null, value?.DeepClone());
                }
                yield return new Case("field-missing", field, null);
            }
        }

        /// <summary>Random values per place, for CsCheck to draw from (and shrink when one fails).</summary>
        public IEnumerable<Gen<Case>> RandomCases(string[] headers)
        {
            var text = Gen.OneOf(Gen.String[0, 300], Gen.Long.Select(l => l.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                Gen.Double.Select(d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
            foreach (var parameter in Parameters)
            {
                yield return text.Select(value => new Case(parameter.In, parameter.Name, parameter.In == "path" ? value.Replace("\u0000", "", StringComparison.Ordinal) : value));
            }
            yield return Gen.OneOf(headers).Select(text, (header, value) => new Case("header", header, new string(value.Where(c => c is >= ' ' and <= '~').ToArray())));
            if (Body is { Count: > 0 })
            {
                var json = Gen.OneOf<JsonNode?>(
                    Gen.String[0, 300].Select(v => (JsonNode?)JsonValue.Create(v)),
                    Gen.Long.Select(v => (JsonNode?)JsonValue.Create(v)),
                    Gen.Double.Where(double.IsFinite).Select(v => (JsonNode?)JsonValue.Create(v)),
                    Gen.Int.Array[0, 20].Select(v => (JsonNode?)new JsonArray(v.Select(i => (JsonNode?)JsonValue.Create(i)).ToArray())));
                yield return Gen.OneOf(Body.Select(p => p.Key).ToArray()).Select(json, (field, value) => new Case("field", field, null, value));
            }
        }

        public HttpRequestMessage Build(Case hostile, Credentials credentials, string cartCookie, IReadOnlyDictionary<string, string> headers)
        {
            var path = Path;
            foreach (var parameter in Parameters.Where(p => p.In == "path"))
            {
                var value = hostile.Slot == "path" && hostile.Name == parameter.Name ? hostile.Text! : Plausible(parameter);
                path = path.Replace("{" + parameter.Name + "}", Uri.EscapeDataString(value), StringComparison.Ordinal);
            }
            var query = new List<string>();
            foreach (var parameter in Parameters.Where(p => p.In == "query"))
            {
                var value = hostile.Slot == "query" && hostile.Name == parameter.Name ? hostile.Text! : Plausible(parameter);
                query.Add($"{Uri.EscapeDataString(parameter.Name)}={Uri.EscapeDataString(value)}");
                if (hostile.Slot == "query-twice" && hostile.Name == parameter.Name)
                {
                    query.Add($"{Uri.EscapeDataString(parameter.Name)}=2");
                }
            }
            var request = new HttpRequestMessage(new HttpMethod(Method), query.Count == 0 ? path : path + "?" + string.Join('&', query));
            if (BodyType != "application/x-www-form-urlencoded")
            {
                // The token endpoint authenticates its client by the form alone (RFC 6749 2.3: one method per request).
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", credentials.Token);
            }
            request.Headers.TryAddWithoutValidation("If-Match", headers.GetValueOrDefault("If-Match", "\"v1\""));
            request.Headers.TryAddWithoutValidation("Idempotency-Key", "hostile-" + Guid.NewGuid().ToString("N"));
            request.Headers.TryAddWithoutValidation("Cookie", cartCookie);
            request.Headers.TryAddWithoutValidation(Microsoft.Extensions.Hosting.ShopAuthentication.ClientContextHeader, credentials.ClientContext);
            foreach (var parameter in Parameters.Where(p => p.In == "header"))
            {
                request.Headers.TryAddWithoutValidation(parameter.Name, Plausible(parameter));
            }
            if (hostile.Slot == "header")
            {
                request.Headers.Remove(hostile.Name);
                request.Headers.TryAddWithoutValidation(hostile.Name, hostile.Text);
            }

            if (hostile.Slot == "body")
            {
                request.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(hostile.RawBody!));
                if (hostile.ContentType is not null) request.Content.Headers.ContentType = new MediaTypeHeaderValue(hostile.ContentType);
            }
            else if (BodyType == "application/x-www-form-urlencoded")
            {
                var form = (Body ?? []).ToDictionary(p => p.Key, p => p.Value?.ToString() ?? "");
                if (hostile.Slot == "field") form[hostile.Name] = hostile.Json?.ToString() ?? "";
                if (hostile.Slot == "field-missing") form.Remove(hostile.Name);
                request.Content = new FormUrlEncodedContent(form);
            }
            else if (BodyType is not null)
            {
                var body = (JsonObject)(Body?.DeepClone() ?? new JsonObject());
                if (hostile.Slot == "field") body[hostile.Name] = hostile.Json?.DeepClone();
                if (hostile.Slot == "field-missing") body.Remove(hostile.Name);
                request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, BodyType);
            }
            return request;
        }

        // A value that passes the field's own rules, so that the one hostile value is what the request is judged by.
        private static string Plausible(Parameter parameter) => parameter.Name switch
        {
            "id" or "productId" => Target.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "board" => "most-viewed",
            "metric" => "views",
            "window" => "24h",
            "day" => "2026-01-01",
            "category" => "category-3",
            _ => parameter.Type switch { "boolean" => "true", _ => "1" },
        };

        private static string TypeOf(JsonElement schema, JsonElement schemas)
        {
            schema = Resolve(schema, schemas);
            if (!schema.TryGetProperty("type", out var type)) return "string";
            return type.ValueKind == JsonValueKind.Array
                ? type.EnumerateArray().Select(t => t.GetString()!).FirstOrDefault(t => t != "null") ?? "string"
                : type.GetString() ?? "string";
        }

        private static JsonObject Example(JsonElement schema, JsonElement schemas)
        {
            var example = new JsonObject();
            schema = schema.ValueKind == JsonValueKind.Undefined ? default : Resolve(schema, schemas);
            if (schema.ValueKind != JsonValueKind.Object || !schema.TryGetProperty("properties", out var properties)) return example;
            foreach (var property in properties.EnumerateObject())
            {
                example[property.Name] = (property.Name, TypeOf(property.Value, schemas)) switch
                {
                    ("productId", _) => JsonValue.Create(Target),
                    ("price", _) => JsonValue.Create(12.5m),
                    ("stock", _) => JsonValue.Create(5),
                    (_, "integer" or "number") => JsonValue.Create(1),
                    (_, "boolean") => JsonValue.Create(true),
                    (_, "array") => new JsonArray(),
                    (_, "object") => new JsonObject(),
                    _ => JsonValue.Create(property.Name switch
                    {
                        "grant_type" => "client_credentials",
                        "type" => "product.viewed",
                        "email" => "fuzz@example.com",
                        "currency" => "EUR",
                        "category" => "category-3",
                        "name" => "The hostile-input test's product",
                        "description" => "Written by the hostile-input test, read by no other.",
                        _ => "x",
                    }),
                };
            }
            return example;
        }

        // Follows references, and of a nullable type's alternatives (oneOf/anyOf: the type or null) takes the type.
        private static JsonElement Resolve(JsonElement schema, JsonElement schemas)
        {
            while (schema.ValueKind == JsonValueKind.Object)
            {
                if (schema.TryGetProperty("$ref", out var reference) && schemas.ValueKind == JsonValueKind.Object)
                {
                    schema = schemas.GetProperty(reference.GetString()!.Split('/')[^1]);
                }
                else if ((schema.TryGetProperty("oneOf", out var choices) || schema.TryGetProperty("anyOf", out choices) || schema.TryGetProperty("allOf", out choices))
                    && choices.EnumerateArray().FirstOrDefault(c => !(c.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == "null")) is { ValueKind: JsonValueKind.Object } choice)
                {
                    schema = choice;
                }
                else
                {
                    return schema;
                }
            }
            return schema;
        }
    }
}
