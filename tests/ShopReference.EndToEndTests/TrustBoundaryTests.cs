using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Npgsql;
using ShopReference.Contracts.Events;
using StackExchange.Redis;

using ShopReference.Testing;
using ShopReference.Valkey;

namespace ShopReference.EndToEndTests;

/// <summary>
/// Who may do what (docs/security.md): every write and operator route refuses the anonymous (401) and the
/// unprivileged (403) in the service itself, tokens the gateway did not issue are refused, and nothing a refused
/// request touches changes.
/// </summary>
[Collection(ShopAppCollection.Name)]
public sealed class TrustBoundaryTests(ShopAppFixture fixture)
{
    private const long GuardedProduct = 777;
    private ShopApp Shop => fixture.Shop;
    private DistributedApplication App => Shop.App;
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string, string, string, string> OperatorRoutes => new()
    {
        // resource, method, path, the client that may (everyone else is refused)
        { "catalog", "DELETE", "/admin/cache/products/1", "operator" },
        { "cart-session", "GET", "/admin/sessions", "operator" },
        { "analytics", "POST", "/admin/rollup", "operator" },
        { "analytics", "POST", "/admin/events/replay?count=1", "operator" },
        { "analytics", "POST", "/admin/leaderboards/rebuild", "operator" },
    };

    [Theory]
    [MemberData(nameof(OperatorRoutes))]
    public async Task An_operator_route_refuses_the_anonymous_with_401_and_other_clients_with_403_in_the_service_itself(
        string resource, string method, string path, string allowed)
    {
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? "");
        var streamBefore = await valkey.GetDatabase().StreamLengthAsync(EventStream.Key);

        using var anonymous = await SendAsync(resource, method, path, token: null);
        using var partner = await SendAsync(resource, method, path, await Shop.TokenAsync("dashboard-stampede", Ct));
        using var admin = await SendAsync(resource, method, path, await Shop.TokenAsync("catalog-admin", Ct));

        AssertRefused(anonymous, HttpStatusCode.Unauthorized);
        Assert.StartsWith("Bearer", anonymous.Headers.WwwAuthenticate.ToString());
        AssertRefused(partner, HttpStatusCode.Forbidden);
        AssertRefused(admin, HttpStatusCode.Forbidden);
        Assert.Equal(streamBefore, await valkey.GetDatabase().StreamLengthAsync(EventStream.Key)); // no replay happened
        using var permitted = await SendAsync(resource, method, path, await Shop.TokenAsync(allowed, Ct));
        Assert.True(permitted.IsSuccessStatusCode, $"{allowed} on {method} {path}: {(int)permitted.StatusCode}");
    }

    [Fact]
    public async Task A_catalog_write_needs_catalog_write_through_the_gateway_and_straight_at_a_replica_and_changes_nothing_when_refused()
    {
        using var anonymousGateway = App.CreateHttpClient("rate-limit");
        using var read = await anonymousGateway.GetAsync($"/api/catalog/products/{GuardedProduct}", Ct);
        var etag = read.Headers.ETag!.Tag;
        var before = await RowAsync(GuardedProduct);
        var replicas = await Shop.ReplicaAddressesAsync("catalog", 2, TimeSpan.FromSeconds(30));
        var body = new { name = "Price set to zero", description = "", category = "category-1", price = 0m, stock = 1 };

        foreach (var target in new[] { App.GetEndpoint("rate-limit", "http"), replicas[0], replicas[1] })
        {
            using var http = new HttpClient { BaseAddress = target };
            foreach (var (client, expected) in new[] { ((string?)null, HttpStatusCode.Unauthorized), ("dashboard", HttpStatusCode.Forbidden), ("operator", HttpStatusCode.Forbidden) })
            {
                using var put = new HttpRequestMessage(HttpMethod.Put, $"/api/catalog/products/{GuardedProduct}") { Content = JsonContent.Create(body) };
                put.Headers.TryAddWithoutValidation("If-Match", etag);
                if (client is not null) put.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await Shop.TokenAsync(client, Ct));
                using var response = await http.SendAsync(put, Ct);
                AssertRefused(response, expected);
            }
        }

        Assert.Equal(before, await RowAsync(GuardedProduct));
        using var cached = await anonymousGateway.GetAsync($"/api/catalog/products/{GuardedProduct}", Ct);
        Assert.Equal(etag, cached.Headers.ETag!.Tag);
    }

    [Fact]
    public async Task A_token_the_gateway_did_not_issue_is_refused_by_the_gateway_and_by_the_service()
    {
        (string, object)[] claims = [("sub", "intruder"), ("client_id", "intruder"), ("permission", "catalog.write")];
        var forged = new[]
        {
            Forgery.Token(Shop.SigningKey + "x", "shopreference-api", claims), // another key
            Forgery.Token(Shop.SigningKey, "shopreference-api", DateTime.UtcNow.AddMinutes(-5), claims), // expired
            Forgery.Token(Shop.SigningKey, "shopreference-client-context", claims), // a client context is not an access token
        };
        var replica = (await Shop.ReplicaAddressesAsync("catalog", 2, TimeSpan.FromSeconds(30)))[0];
        var before = await RowAsync(GuardedProduct);

        foreach (var token in forged)
        {
            using var gateway = Shop.GatewayAsNewClient(out _); // each from an address of its own: refusals count per address
            using var direct = new HttpClient { BaseAddress = replica };
            foreach (var http in new[] { gateway, direct })
            {
                using var put = new HttpRequestMessage(HttpMethod.Put, $"/api/catalog/products/{GuardedProduct}")
                {
                    Content = JsonContent.Create(new { name = "Forged", description = "", category = "category-1", price = 0m, stock = 1 }),
                };
                put.Headers.TryAddWithoutValidation("If-Match", "\"v1\"");
                put.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                using var response = await http.SendAsync(put, Ct);
                AssertRefused(response, HttpStatusCode.Unauthorized);
                if (http == gateway)
                {
                    // The gateway's own answer: the request never reached a catalog replica (each names itself in X-Replica).
                    var answeredBy = response.Headers.TryGetValues("X-Replica", out var names) ? string.Join(",", names) : "";
                    Assert.False(answeredBy.Contains("catalog", StringComparison.Ordinal), $"the gateway forwarded a forged token to {answeredBy}");
                }
            }
        }
        Assert.Equal(before, await RowAsync(GuardedProduct));
    }

    [Fact]
    public async Task Nothing_in_the_cart_s_whole_configuration_signs_a_token_another_service_accepts()
    {
        var cart = await Shop.EnvironmentOfAsync("cart-session");
        var gatewaySecret = (await Shop.EnvironmentOfAsync("rate-limit"))["Auth__SigningKey"];
        using var catalog = new HttpClient { BaseAddress = App.GetEndpoint("catalog", "http") };
        async Task<HttpStatusCode> EvictWithAsync(string token)
        {
            using var request = new HttpRequestMessage(HttpMethod.Delete, "/admin/cache/products/1");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await catalog.SendAsync(request, Ct);
            return response.StatusCode;
        }

        // Every value the cart process is given, and the issuer's published keys, tried as the key of every way a token
        // could be signed with it, naming the issuer's own key id too.
        using var anonymous = App.CreateHttpClient("rate-limit");
        var published = await anonymous.GetStringAsync("/.well-known/jwks.json", Ct);
        var kid = JsonDocument.Parse(published).RootElement.GetProperty("keys")[0].GetProperty("kid").GetString()!;
        var attempts = cart.Values.Append(published).Where(value => value.Length >= 16).Distinct().SelectMany(v => MintingAttempts(v, kid)).ToList();
        var accepted = new List<string>();
        foreach (var (how, token) in attempts)
        {
            if (await EvictWithAsync(token) != HttpStatusCode.Unauthorized) accepted.Add(how);
        }

        Assert.DoesNotContain(cart.Keys, name => name.StartsWith("Auth__SigningKey", StringComparison.Ordinal) || name == "Auth__PreviousSigningKey");
        Assert.True(attempts.Count > 20, $"only {attempts.Count} attempts: the cart's environment was not read");
        Assert.Empty(accepted);
        // The same procedure with the gateway's secret does sign a token the catalog accepts: the attempts above could succeed.
        var withTheGatewaysSecret = await Task.WhenAll(MintingAttempts(gatewaySecret, kid).Select(a => EvictWithAsync(a.Token)));
        Assert.Contains(withTheGatewaysSecret, status => (int)status is >= 200 and < 300);
    }

    // An operator token signed with a value: as the issuer signs (ES256 from a secret), and as HS256 with the value as the
    // key, the old shared-secret scheme and the classic algorithm confusion of a public key used as an HMAC secret.
    private static IEnumerable<(string How, string Token)> MintingAttempts(string value, string issuerKid)
    {
        (string, object)[] claims = [("sub", "intruder"), ("client_id", "intruder"), ("permission", "operator"), ("scope", "operator")];
        if (value.Length >= IssuerSigningKey.MinimumSecretLength)
        {
            yield return ($"ES256 from '{value[..4]}…'", Forgery.Token(value, ShopAuthentication.ApiAudience, claims));
        }
        if (value.Length >= 16)
        {
            foreach (var kid in new[] { "shop", "", issuerKid })
            {
                yield return ($"HS256 '{value[..4]}…' kid '{kid}'", Forgery.HmacToken(value, kid, ShopAuthentication.ApiAudience, claims));
            }
        }
    }

    [Fact]
    public async Task The_token_endpoint_grants_only_the_client_s_own_permissions_for_five_minutes()
    {
        using var gateway = Shop.GatewayAsNewClient(out _);

        using var full = await TokenRequestAsync(gateway, "catalog-admin", Shop.CatalogAdminKey);
        using var narrowed = await TokenRequestAsync(gateway, "operator", Shop.OperatorKey, scope: "operator");
        using var overreach = await TokenRequestAsync(gateway, "operator", Shop.OperatorKey, scope: "catalog.write");
        using var wrongKey = await TokenRequestAsync(gateway, "operator", Shop.CatalogAdminKey);
        using var unknown = await TokenRequestAsync(gateway, "nobody", Shop.OperatorKey);
        using var password = await gateway.PostAsync("/api/auth/token", new FormUrlEncodedContent([new("grant_type", "password")]), Ct);

        var token = await full.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.Equal("Bearer", token.GetProperty("token_type").GetString());
        Assert.Equal(300, token.GetProperty("expires_in").GetInt32());
        Assert.Equal("catalog.write", token.GetProperty("scope").GetString());
        Assert.Equal("no-store", full.Headers.CacheControl?.ToString());
        Assert.Equal("operator", (await narrowed.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("scope").GetString());
        Assert.Equal("invalid_scope", await OAuthErrorAsync(overreach, HttpStatusCode.BadRequest));
        Assert.Equal("invalid_client", await OAuthErrorAsync(wrongKey, HttpStatusCode.Unauthorized));
        Assert.Equal("invalid_client", await OAuthErrorAsync(unknown, HttpStatusCode.Unauthorized));
        Assert.Equal("unsupported_grant_type", await OAuthErrorAsync(password, HttpStatusCode.BadRequest));
    }

    [Fact]
    public async Task An_access_token_is_an_es256_at_jwt_whose_key_the_discovery_document_publishes_without_its_private_part()
    {
        using var gateway = Shop.GatewayAsNewClient(out _);
        using var issued = await TokenRequestAsync(gateway, "operator", Shop.OperatorKey);
        var token = new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(
            (await issued.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("access_token").GetString());

        var discovery = await gateway.GetFromJsonAsync<JsonElement>("/.well-known/openid-configuration", Ct);
        var keys = (await gateway.GetFromJsonAsync<JsonElement>(discovery.GetProperty("jwks_uri").GetString(), Ct)).GetProperty("keys");

        Assert.Equal(("at+jwt", "ES256"), (token.Typ, token.Alg));
        Assert.Equal("operator", token.GetClaim("scope").Value);
        Assert.Equal("shopreference-gateway", discovery.GetProperty("issuer").GetString());
        Assert.EndsWith("/api/auth/token", discovery.GetProperty("token_endpoint").GetString());
        var key = Assert.Single(keys.EnumerateArray(), k => k.GetProperty("kid").GetString() == token.Kid);
        Assert.Equal(("EC", "P-256"), (key.GetProperty("kty").GetString(), key.GetProperty("crv").GetString()));
        Assert.False(key.TryGetProperty("d", out _), "the published key carries its private part");
    }

    /// <summary>
    /// Every client has a key of its own: the read-only partner's key with a suffix is no key at all, so holding it
    /// grants neither the stampede client's quota nor the shoppers permission.
    /// </summary>
    [Fact]
    public async Task No_client_key_is_derived_from_another_client_s()
    {
        using var gateway = Shop.GatewayAsNewClient(out _);
        foreach (var derived in new[] { Shop.DemoApiKey + "-shoppers", Shop.DemoApiKey + "-stampede" })
        {
            using var response = await gateway.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/api/ratelimit/policies") { Headers = { { "X-Api-Key", derived } } }, Ct);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }
    }

    /// <summary>
    /// The lockout slows guessing from one address and nothing else: the eleventh wrong key is a 429 with Retry-After, but
    /// the right key from that same address (a partner behind the same ingress or NAT as the guesser) is still served,
    /// as are anonymous requests and another address.
    /// </summary>
    [Fact]
    public async Task Refused_credentials_are_limited_per_client_address_and_never_lock_out_a_valid_key()
    {
        using var guesser = Shop.GatewayAsNewClient(out _);
        using var neighbour = Shop.GatewayAsNewClient(out _);

        var refusals = new List<HttpStatusCode>();
        for (var i = 0; i < 10; i++)
        {
            using var guess = await TokenRequestAsync(guesser, "operator", $"guessed-key-{i:D4}-abcdefgh");
            refusals.Add(guess.StatusCode);
        }
        using var nextGuess = await TokenRequestAsync(guesser, "operator", "guessed-key-9999-abcdefgh");
        using var wrongApiKey = await guesser.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/api/ratelimit/policies") { Headers = { { "X-Api-Key", "guessed-api-key-abcdefgh" } } }, Ct);
        using var rightKey = await TokenRequestAsync(guesser, "operator", Shop.OperatorKey);
        using var rightApiKey = await guesser.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/api/ratelimit/policies") { Headers = { { "X-Api-Key", Shop.StampedeKey } } }, Ct);
        using var anonymousStillServed = await guesser.GetAsync("/api/ratelimit/policies", Ct);
        using var neighbourServed = await TokenRequestAsync(neighbour, "operator", Shop.OperatorKey);

        Assert.All(refusals, status => Assert.Equal(HttpStatusCode.Unauthorized, status));
        Assert.Equal(HttpStatusCode.TooManyRequests, nextGuess.StatusCode);
        Assert.NotNull(nextGuess.Headers.RetryAfter);
        Assert.Equal(HttpStatusCode.TooManyRequests, wrongApiKey.StatusCode);
        Assert.Equal(HttpStatusCode.OK, rightKey.StatusCode);
        Assert.Equal(HttpStatusCode.OK, rightApiKey.StatusCode);
        Assert.Equal(HttpStatusCode.OK, anonymousStillServed.StatusCode);
        Assert.Equal(HttpStatusCode.OK, neighbourServed.StatusCode);
    }

    [Theory]
    [InlineData("catalog", "catalog:", "cart:session:{x}")]
    [InlineData("cart-session", "cart:", "catalog:product:{1}")]
    [InlineData("analytics", "analytics:", "ratelimit:swc:{x}")]
    [InlineData("rate-limit", "ratelimit:", "analytics:events:{shop}")]
    public async Task Each_service_s_valkey_user_reaches_its_own_keys_only_and_no_administrative_command(string service, string ownPrefix, string othersKey)
    {
        var connectionString = await Shop.EnvironmentOfAsync(service, "ConnectionStrings__valkey");
        Assert.Contains("user=", connectionString);
        Assert.DoesNotContain(Shop.ValkeyPassword, connectionString);
        // allowAdmin: the client library would refuse administrative commands itself; the server must be the one to refuse.
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(connectionString + ",abortConnect=false,allowAdmin=true");
        var database = valkey.GetDatabase();

        await database.StringSetAsync($"{ownPrefix}test:acl", "mine", TimeSpan.FromMinutes(1));
        Assert.Equal("mine", await database.StringGetAsync($"{ownPrefix}test:acl"));
        // Beyond the administrative ones, what an allow-list leaves out: watching every key's changes (CLIENT TRACKING
        // BCAST), inspecting keys (OBJECT), and listing every service's channels (PUBSUB).
        foreach (var command in new[] { new object[] { "FLUSHALL" }, ["CONFIG", "GET", "maxmemory"], ["KEYS", "*"], ["CLIENT", "LIST"], ["SWAPDB", "0", "1"], ["ACL", "LIST"], ["SCRIPT", "FLUSH"], ["INFO"],
            ["CLIENT", "TRACKING", "ON", "BCAST"], ["OBJECT", "ENCODING", $"{ownPrefix}test:acl"], ["PUBSUB", "CHANNELS"] })
        {
            var refused = await Assert.ThrowsAsync<RedisServerException>(() => database.ExecuteAsync((string)command[0], command[1..]));
            Assert.StartsWith("NOPERM", refused.Message);
        }
        var othersRefused = await Assert.ThrowsAsync<RedisServerException>(() => database.StringGetAsync(othersKey));
        Assert.StartsWith("NOPERM", othersRefused.Message);
    }

    [Theory]
    [InlineData("catalog", true)]
    [InlineData("cart-session", true)]
    [InlineData("analytics", true)]
    [InlineData("rate-limit", false)]
    public async Task Only_publishing_services_may_append_to_the_event_stream_and_none_may_trim_it(string service, bool publishes)
    {
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await Shop.EnvironmentOfAsync(service, "ConnectionStrings__valkey") + ",allowAdmin=true");
        var database = valkey.GetDatabase();

        var trim = await Assert.ThrowsAnyAsync<RedisException>(() => service == "analytics"
            ? database.ExecuteAsync("FLUSHDB") // analytics owns the stream; what it may not do is clear the server
            : database.StreamTrimAsync(EventStream.Key, 0));
        Assert.StartsWith("NOPERM", trim.Message);
        if (publishes)
        {
            // An entry without an event: the consumer dead-letters it, so it counts nowhere.
            Assert.False((await database.StreamAddAsync(EventStream.Key, "acl-test", service)).IsNull);
        }
        else
        {
            Assert.StartsWith("NOPERM", (await Assert.ThrowsAsync<RedisServerException>(() => database.StreamAddAsync(EventStream.Key, "acl-test", service))).Message);
        }
    }

    /// <summary>
    /// The operator routes are not mapped out for strangers: the public document (through the gateway) lists none of
    /// them, whatever the query asks for, and the whole document is served only to an operator, straight at a service.
    /// </summary>
    [Theory]
    [InlineData("catalog", "catalog", true)]
    [InlineData("cart-session", "cart", true)]
    [InlineData("analytics", "analytics", true)]
    [InlineData("rate-limit", "ratelimit", false)]
    public async Task The_public_openapi_document_lists_no_operator_route_and_the_whole_one_is_for_operators_only(string resource, string name, bool hasOperatorRoutes)
    {
        using var gateway = Shop.GatewayAsNewClient(out _);
        async Task<List<string>> PathsAsync(HttpClient http, string path) =>
            [.. JsonDocument.Parse(await http.GetStringAsync(path, Ct)).RootElement.GetProperty("paths").EnumerateObject().Select(p => p.Name)];

        var published = await PathsAsync(gateway, $"/api/{name}/openapi/v1.json");
        var askedForTheWhole = await PathsAsync(gateway, $"/api/{name}/openapi/v1.json?documentName=internal");
        using var internalThroughGateway = await gateway.GetAsync($"/api/{name}/openapi/internal.json", Ct);
        using var direct = resource == "rate-limit" ? Shop.GatewayAsNewClient(out _) : App.CreateHttpClient(resource);
        using var anonymous = await direct.GetAsync(Microsoft.Extensions.Hosting.Extensions.InternalDocumentPath, Ct);
        using var operatorClient = await Shop.ClientAsAsync(resource, "operator", Ct);
        var whole = await PathsAsync(operatorClient, Microsoft.Extensions.Hosting.Extensions.InternalDocumentPath);

        Assert.Contains(published, p => p.StartsWith("/api/", StringComparison.Ordinal));
        Assert.DoesNotContain(published, p => p.StartsWith("/admin", StringComparison.Ordinal));
        Assert.DoesNotContain(askedForTheWhole, p => p.StartsWith("/admin", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.NotFound, internalThroughGateway.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal(hasOperatorRoutes, whole.Any(p => p.StartsWith("/admin", StringComparison.Ordinal)));
        Assert.Superset(published.ToHashSet(), whole.ToHashSet());
    }

    /// <summary>
    /// The visitor id a view carries into the stream (and from there into the uniques and the outbox) is an HMAC of the
    /// client's address under a key only the gateway is given: reading the stream does not give the addresses back.
    /// </summary>
    [Fact]
    public async Task A_view_s_visitor_id_is_keyed_by_a_secret_only_the_gateway_holds()
    {
        using var gateway = Shop.GatewayAsNewClient(out var address);
        using var posted = await gateway.PostAsJsonAsync("/api/analytics/events", new { type = "product.viewed", productId = 1 }, Ct);
        Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
        var id = (await posted.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("id").GetString();
        await using var valkey = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) ?? "");
        var entry = (await valkey.GetDatabase().StreamRangeAsync(EventStream.Key, "-", "+", 1000, Order.Descending)).Single(e => (string?)e["id"] == id);

        var key = await Shop.EnvironmentOfAsync("rate-limit", "Auth__VisitorKey");
        var identity = "ip-" + address; // the identity the gateway's limiter counts an anonymous client by
        var keyed = Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(identity)))[..24];
        Assert.Equal(keyed, (string?)entry["visitor"]);
        Assert.NotEqual(KeySchema.Sha256Hex(identity)[..24], keyed);
        foreach (var service in new[] { "catalog", "cart-session", "analytics" })
        {
            Assert.DoesNotContain("Auth__VisitorKey", (await Shop.EnvironmentOfAsync(service)).Keys);
        }
    }

    [Fact]
    public async Task Valkey_has_a_memory_limit_and_refuses_writes_at_it_rather_than_evicting()
    {
        await using var admin = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("valkey", Ct) + ",allowAdmin=true");
        foreach (var server in admin.GetServers()) // every node of a cluster
        {
            var settings = (await server.ConfigGetAsync("maxmemory*")).ToDictionary(p => p.Key, p => p.Value);

            Assert.Equal((256L * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture), settings["maxmemory"]);
            Assert.Equal("noeviction", settings["maxmemory-policy"]);
        }
    }

    [Theory]
    [InlineData("catalogdb", "catalog", "cartdb")]
    [InlineData("cartdb", "cart", "analyticsdb")]
    [InlineData("analyticsdb", "analytics", "catalogdb")]
    public async Task Each_service_s_postgres_role_owns_its_database_and_nothing_else(string database, string role, string othersDatabase)
    {
        var own = new NpgsqlConnectionStringBuilder(await Shop.EnvironmentOfAsync(database == "cartdb" ? "cart-session" : role, $"ConnectionStrings__{database}")) { Pooling = false };
        Assert.Equal(role, own.Username);

        await using (var connection = new NpgsqlConnection(own.ConnectionString))
        {
            await connection.OpenAsync(Ct);
            await using var attributes = new NpgsqlCommand(
                "select rolsuper, rolcreaterole, rolcreatedb, rolreplication, pg_get_userbyid(d.datdba) from pg_roles r, pg_database d where r.rolname = current_user and d.datname = current_database()", connection);
            await using (var reader = await attributes.ExecuteReaderAsync(Ct))
            {
                await reader.ReadAsync(Ct);
                Assert.Equal((false, false, false, role == "catalog", role),
                    (reader.GetBoolean(0), reader.GetBoolean(1), reader.GetBoolean(2), reader.GetBoolean(3), reader.GetString(4)));
            }
            foreach (var sql in new[] { "create role intruder login", "create database intruder", "alter role current_user superuser" })
            {
                var refused = await Assert.ThrowsAsync<PostgresException>(() => new NpgsqlCommand(sql, connection).ExecuteNonQueryAsync(Ct));
                Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
            }
        }
        foreach (var other in new[] { othersDatabase, "postgres" })
        {
            await using var elsewhere = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(own.ConnectionString) { Database = other }.ConnectionString);
            var refused = await Assert.ThrowsAsync<PostgresException>(() => elsewhere.OpenAsync(Ct));
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
        }
    }

    [Fact]
    public async Task The_change_feed_role_may_decode_its_own_database_but_not_stream_the_whole_server()
    {
        var catalog = new NpgsqlConnectionStringBuilder(await Shop.EnvironmentOfAsync("catalog", "ConnectionStrings__catalogdb")) { Pooling = false };

        await using var physical = new Npgsql.Replication.PhysicalReplicationConnection(catalog.ConnectionString);
        var refused = await Assert.ThrowsAsync<PostgresException>(() => physical.Open(Ct));

        Assert.Equal(PostgresErrorCodes.InvalidAuthorizationSpecification, refused.SqlState); // no pg_hba entry for it
    }

    [Fact]
    public async Task A_preferences_cookie_written_by_one_replica_is_read_by_the_other()
    {
        var replicas = (await Shop.ReplicaAddressesAsync("cart-session", 2, TimeSpan.FromSeconds(30))).Select(CartHttp.Client).ToArray();
        try
        {
            using var set = await replicas[0].SendAsync(HttpMethod.Put, "/api/cart/preferences", null, new { currency = "GBP" }, Ct);
            var cookie = CartHttp.SetCookie(set, "shop.prefs");
            Assert.NotNull(cookie);

            using var read = await replicas[1].SendAsync(HttpMethod.Get, "/api/cart/preferences", cookie, null, Ct);

            Assert.Equal("GBP", (await read.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("currency").GetString());
        }
        finally
        {
            foreach (var replica in replicas) replica.Dispose();
        }
    }

    [Fact]
    public async Task A_cart_cookie_is_secure_when_the_client_used_https_at_the_ingress()
    {
        using var overTls = Shop.GatewayAsNewClient(out _);
        overTls.DefaultRequestHeaders.Add("X-Forwarded-Proto", "https"); // said by the trusted proxy in front of the gateway
        using var plain = Shop.GatewayAsNewClient(out _);
        using var direct = CartHttp.Client(App.GetEndpoint("cart-session", "http"));
        direct.DefaultRequestHeaders.Add("X-Forwarded-Proto", "https"); // said by nobody the service believes

        var cookies = new List<string>();
        foreach (var http in new[] { overTls, plain, direct })
        {
            using var added = await http.SendAsync(HttpMethod.Post, "/api/cart/items", null, new { productId = 3, quantity = 1 }, Ct);
            Assert.Equal(HttpStatusCode.OK, added.StatusCode);
            cookies.Add(added.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("shop.sid=", StringComparison.Ordinal)));
        }

        Assert.Equal([true, false, false], cookies.Select(c => c.Split(';').Any(a => a.Trim().Equals("secure", StringComparison.OrdinalIgnoreCase))));
    }

    [Fact]
    public async Task A_method_no_policy_names_falls_under_the_default_policy()
    {
        using var gateway = Shop.GatewayAsNewClient(out _);

        using var response = await gateway.SendAsync(new HttpRequestMessage(HttpMethod.Options, "/api/catalog/products/1"), Ct);

        Assert.Equal("\"default\";q=60;w=60", Assert.Single(response.Headers.GetValues("RateLimit-Policy")));
    }

    [Fact]
    public async Task Diagnostics_show_no_host_to_an_anonymous_caller()
    {
        using var gateway = App.CreateHttpClient("rate-limit");

        var stats = await gateway.GetFromJsonAsync<JsonElement>("/api/catalog/stats", Ct);
        var wiring = await gateway.GetFromJsonAsync<JsonElement>("/api/analytics/wiring", Ct);

        Assert.Equal(JsonValueKind.Null, stats.GetProperty("instance").ValueKind);
        Assert.Equal(JsonValueKind.Null, wiring.GetProperty("instance").ValueKind);
        Assert.Equal(JsonValueKind.Null, wiring.GetProperty("databaseServerVersion").ValueKind);
    }

    private async Task<HttpResponseMessage> SendAsync(string resource, string method, string path, string? token)
    {
        using var http = App.CreateHttpClient(resource);
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var response = await http.SendAsync(request, Ct);
        await response.Content.LoadIntoBufferAsync(Ct);
        return response;
    }

    private Task<HttpResponseMessage> TokenRequestAsync(HttpClient gateway, string client, string key, string? scope = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/auth/token")
        {
            Content = new FormUrlEncodedContent(scope is null
                ? [new("grant_type", "client_credentials")]
                : [new("grant_type", "client_credentials"), new("scope", scope)]),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{client}:{key}")));
        return gateway.SendAsync(request, Ct);
    }

    private async Task<string?> OAuthErrorAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetString();
    }

    private static void AssertRefused(HttpResponseMessage response, HttpStatusCode expected)
    {
        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    private async Task<(string Name, decimal Price, int Version)> RowAsync(long id)
    {
        await using var connection = new NpgsqlConnection(await App.GetConnectionStringAsync("catalogdb", Ct));
        await connection.OpenAsync(Ct);
        await using var select = new NpgsqlCommand("select name, price, version from products where id = $1", connection) { Parameters = { new() { Value = id } } };
        await using var reader = await select.ExecuteReaderAsync(Ct);
        await reader.ReadAsync(Ct);
        return (reader.GetString(0), reader.GetDecimal(1), reader.GetInt32(2));
    }
}
