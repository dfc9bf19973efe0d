using Npgsql;

namespace ShopReference.Catalog.Data;

/// <summary>
/// Creates the schema, seeds 10,000 deterministic products and the change-data-capture publication, once, even with
/// several replicas starting together (a PostgreSQL advisory lock serializes them). Until it has finished, the
/// <c>catalog-initializer</c> health check keeps <c>/health</c> unhealthy, so nothing routes to an empty catalog.
/// </summary>
public sealed class CatalogInitializer(NpgsqlDataSource dataSource, ILogger<CatalogInitializer> logger) : StartupInitializer(logger)
{
    public const int SeedProducts = 10_000;
    public const string Publication = "catalog_products";

    /// <summary>The one-row table the change feed touches when idle, so its position keeps moving (bounded WAL).</summary>
    public const string HeartbeatTable = "catalog_feed_heartbeat";
    private const long AdvisoryLock = 0x5348_4f50_4341_54; // "SHOPCAT"

    protected override string Work => "Catalog initialization";

    /// <summary>Schema, seed and publication; safe to run from several instances at once, and again.</summary>
    public override async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await ExecuteAsync(connection, "select pg_advisory_lock($1)", cancellationToken, AdvisoryLock);
        try
        {
            await ExecuteAsync(connection, Schema, cancellationToken);
            await using var count = new NpgsqlCommand("select count(*) from products", connection);
            if ((long)(await count.ExecuteScalarAsync(cancellationToken))! == 0)
            {
                await ExecuteAsync(connection, SeedCategories, cancellationToken);
                await ExecuteAsync(connection, SeedProductRows, cancellationToken, SeedProducts);
                logger.LogInformation("Seeded {Count} products.", SeedProducts);
            }
            await using var exists = new NpgsqlCommand("select 1 from pg_publication where pubname = $1", connection) { Parameters = { new() { Value = Publication } } };
            if (await exists.ExecuteScalarAsync(cancellationToken) is null)
            {
                await ExecuteAsync(connection, $"create publication {Publication} for table products, {HeartbeatTable}", cancellationToken);
            }
            await using var heartbeat = new NpgsqlCommand("select 1 from pg_publication_tables where pubname = $1 and tablename = $2", connection)
            {
                Parameters = { new() { Value = Publication }, new() { Value = HeartbeatTable } },
            };
            if (await heartbeat.ExecuteScalarAsync(cancellationToken) is null)
            {
                await ExecuteAsync(connection, $"alter publication {Publication} add table {HeartbeatTable}", cancellationToken); // an older database
            }
        }
        finally
        {
            await ExecuteAsync(connection, "select pg_advisory_unlock($1)", CancellationToken.None, AdvisoryLock);
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params object[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        }
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private const string Schema = """
        create table if not exists categories (
            name text primary key
        );
        create table if not exists products (
            id          bigint primary key,
            sku         text not null unique,
            name        text not null,
            description text not null,
            category    text not null references categories(name),
            price       numeric(12, 2) not null check (price >= 0),
            stock       integer not null check (stock >= 0),
            version     integer not null default 1,
            updated_at  timestamptz not null default now()
        );
        create index if not exists products_category_id on products (category, id);
        -- The version names a row's content (ETag, cache version guard, near-cache invalidation), so every update moves
        -- it, also one made by hand in psql that forgot to: otherwise two contents would share one version, and a
        -- replica holding the old one would keep it (and If-None-Match would answer 304 for content it never sent).
        create or replace function products_next_version() returns trigger language plpgsql as $$
        begin
            if new.version <= old.version then
                new.version := old.version + 1;
            end if;
            return new;
        end
        $$;
        create or replace trigger products_version before update on products
            for each row execute function products_next_version();
        create table if not exists catalog_feed_heartbeat (
            id int primary key check (id = 1),
            at timestamptz not null
        );
        """;

    // Deterministic: the same ids, names, prices and stock on every machine, so tests and benchmarks can name products.
    private const string SeedCategories = "insert into categories (name) select 'category-' || g from generate_series(1, 20) g on conflict do nothing";

    private const string SeedProductRows = """
        insert into products (id, sku, name, description, category, price, stock, version, updated_at)
        select g, 'SKU-' || lpad(g::text, 6, '0'), 'Product ' || g, 'Description of product ' || g,
               'category-' || (1 + g % 20), round(5 + (g * 37 % 995) + (g % 100) / 100.0, 2), (g * 13) % 500, 1,
               timestamptz '2026-01-01 00:00:00+00'
        from generate_series(1, $1) g;
        """;
}
