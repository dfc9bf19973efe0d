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
/// token that holds every permission so that authorization is not what refuses them. Hand-picked values for every field
/// first, then random ones generated (and shrunk on failure) by CsCheck. Asserted: no 5xx, every 4xx a ProblemDetails,
/// and a refused write changes nothing (products, orders, the test's cart, the event stream).
/// </summary>
[Collection(ShopAppCollection.Name)]
public sealed class HostileInputTests(ShopAppFixture fixture)
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

    private ShopApp Shop => fixture.Shop;
    private CancellationToken Ct => TestContext.Current.CancellationToken;
    private int _cases;
    private string _cartCookie = "";

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
        var token = Forgery.Token(Shop.SigningKey, "shopreference-api", ("sub", "fuzzer"), ("client_id", "fuzzer"), ("permission", new[] { "catalog.write", "operator" }));
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

        foreach (var operation in operations)
        {
            foreach (var hostile in operation.FixedCases(HostileText, HostileJson, ReadHeaders))
            {
                await CheckAsync(operation, hostile, token, valkey.GetDatabase());
            }
            await Gen.OneOf(operation.RandomCases(ReadHeaders).ToArray())
                .SampleAsync(hostile => CheckAsync(operation, hostile, token, valkey.GetDatabase()), iter: 25, threads: 1);
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"{_cases} hostile cases sent to {operations.Count} operations: 0 × 5xx.");
        TestContext.Current.SendDiagnosticMessage($"Hostile-input suite: {_cases} cases, {operations.Count} operations, 0 × 5xx.");
    }

    private async Task CheckAsync(Operation operation, Case hostile, string token, IDatabase valkey)
    {
        Interlocked.Increment(ref _cases);
        var writes = operation.Method is "POST" or "PUT" or "PATCH" or "DELETE";
        var before = writes ? await StateAsync(valkey) : null;

        using var http = operation.Resource == "rate-limit" ? Shop.GatewayAsNewClient(out _) : Shop.App.CreateHttpClient(operation.Resource);
        using var request = operation.Build(hostile, token, _cartCookie);
        using var response = await http.SendAsync(request, Ct);
        var status = (int)response.StatusCode;
        var what = $"{operation.Method} {operation.Path} with {hostile}: {status}";

        Assert.True(status < 500, what + " " + await response.Content.ReadAsStringAsync(Ct));
        if (status >= 400)
        {
            Assert.True(response.Content.Headers.ContentType?.MediaType == "application/problem+json", what + " without a ProblemDetails body");
            if (writes)
            {
                Assert.True(before == await StateAsync(valkey), what + " changed state");
            }
        }
    }

    // What a refused write must not change: every product's version, the orders, the test's cart and the event stream.
    private async Task<string> StateAsync(IDatabase valkey)
    {
        await using var catalog = new NpgsqlConnection(await Shop.App.GetConnectionStringAsync("catalogdb", Ct));
        await catalog.OpenAsync(Ct);
        await using var products = new NpgsqlCommand("select md5(string_agg(id || ':' || version || ':' || price, ',' order by id)) from products", catalog);
        await using var cart = new NpgsqlConnection(await Shop.App.GetConnectionStringAsync("cartdb", Ct));
        await cart.OpenAsync(Ct);
        await using var orders = new NpgsqlCommand("select count(*) from orders", cart);
        var session = _cartCookie.Split('=', 2)[1];
        var lines = await valkey.HashGetAllAsync(KeySchema.TaggedKey("cart", "session", KeySchema.Sha256Hex(session))); // CartStore.Key
        return $"{await products.ExecuteScalarAsync(Ct)}|{await orders.ExecuteScalarAsync(Ct)}|" +
            string.Join(",", lines.Where(l => l.Name != "s").OrderBy(l => (string?)l.Name, StringComparer.Ordinal).Select(l => $"{l.Name}={l.Value}")) +
            $"|{await valkey.StreamLengthAsync(EventStream.Key)}";
    }

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

        public HttpRequestMessage Build(Case hostile, string token, string cartCookie)
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
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            request.Headers.TryAddWithoutValidation("If-Match", "\"v1\"");
            request.Headers.TryAddWithoutValidation("Idempotency-Key", "hostile-" + Guid.NewGuid().ToString("N"));
            request.Headers.TryAddWithoutValidation("Cookie", cartCookie);
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
        private static string Plausible(Parameter parameter) => parameter.Type switch
        {
            "integer" or "number" => "1",
            "boolean" => "true",
            _ => parameter.Name switch { "board" => "most-viewed", "metric" => "views", "window" => "24h", "day" => "2026-01-01", _ => "1" },
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
                example[property.Name] = TypeOf(property.Value, schemas) switch
                {
                    "integer" or "number" => JsonValue.Create(1),
                    "boolean" => JsonValue.Create(true),
                    "array" => new JsonArray(),
                    "object" => new JsonObject(),
                    _ => JsonValue.Create(property.Name switch { "grant_type" => "client_credentials", "type" => "product.viewed", "email" => "fuzz@example.com", _ => "x" }),
                };
            }
            return example;
        }

        private static JsonElement Resolve(JsonElement schema, JsonElement schemas)
        {
            while (schema.ValueKind == JsonValueKind.Object && schema.TryGetProperty("$ref", out var reference) && schemas.ValueKind == JsonValueKind.Object)
            {
                schema = schemas.GetProperty(reference.GetString()!.Split('/')[^1]);
            }
            return schema;
        }
    }
}
