using Npgsql;
using NpgsqlTypes;

namespace ShopReference.CartSession.Orders;

/// <summary>
/// Orders in <c>cartdb</c>. An order and its lines are written in one transaction; the pair (session hash,
/// Idempotency-Key) is unique, so even a checkout whose Valkey claim was lost cannot place a second order.
/// The schema is created at start (serialised across replicas); <c>/health</c> stays red until it exists.
/// </summary>
public sealed class OrdersDatabase(NpgsqlDataSource dataSource, ILogger<OrdersDatabase> logger) : StartupInitializer(logger)
{
    private const long AdvisoryLock = 0x5348_4f50_4f52_44; // "SHOPORD"

    protected override string Work => "Creating the orders schema";

    public override async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"select pg_advisory_xact_lock({AdvisoryLock}); {Schema}", connection);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        command.Transaction = transaction;
        await command.ExecuteNonQueryAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>The order placed under this key, or null.</summary>
    public async Task<(Order Order, string Fingerprint)?> FindAsync(string sessionHash, string idempotencyKey, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("select id from orders where session_hash = $1 and idempotency_key = $2");
        command.Parameters.Add(new() { Value = sessionHash });
        command.Parameters.Add(new() { Value = idempotencyKey });
        return await command.ExecuteScalarAsync(cancellationToken) is long id ? await LoadAsync(id, cancellationToken) : null;
    }

    /// <summary>An order with its lines, and the fingerprint of the request that placed it.</summary>
    public async Task<(Order Order, string Fingerprint)?> LoadAsync(long orderId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select o.email, o.placed_at, o.request_fingerprint, l.product_id, l.name, l.unit_price, l.quantity
            from orders o join order_lines l on l.order_id = o.id
            where o.id = $1 order by l.product_id
            """);
        command.Parameters.Add(new() { Value = orderId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var lines = new List<OrderLine>();
        string? email = null, fingerprint = null;
        var placedAt = default(DateTimeOffset);
        while (await reader.ReadAsync(cancellationToken))
        {
            (email, placedAt, fingerprint) = (reader.GetString(0), reader.GetFieldValue<DateTimeOffset>(1), reader.GetString(2));
            lines.Add(new OrderLine(reader.GetInt64(3), reader.GetString(4), reader.GetDecimal(5), reader.GetInt32(6)));
        }
        return email is null ? null : (new Order(orderId, email, placedAt, lines, lines.Sum(l => l.UnitPrice * l.Quantity)), fingerprint!);
    }

    /// <summary>
    /// Writes the order, its lines and its <c>order.placed</c> event (the outbox) in one transaction. Returns the new
    /// id, or null when an order under the same (session, key) already exists: the unique constraint decided, and
    /// nothing was written. A failure before the commit leaves nothing; a failure during it is
    /// <see cref="OrderOutcomeUnknownException"/>: the server may have committed.
    /// </summary>
    public async Task<long?> InsertAsync(string sessionHash, string idempotencyKey, string fingerprint, string email,
        IReadOnlyList<OrderLine> lines, string? visitor, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var order = new NpgsqlCommand("""
            insert into orders (session_hash, idempotency_key, request_fingerprint, email)
            values ($1, $2, $3, $4)
            on conflict (session_hash, idempotency_key) do nothing
            returning id
            """, connection, transaction);
        foreach (var value in new object[] { sessionHash, idempotencyKey, fingerprint, email })
        {
            order.Parameters.Add(new() { Value = value });
        }
        if (await order.ExecuteScalarAsync(cancellationToken) is not long id)
        {
            return null;
        }
        await using var orderLines = new NpgsqlCommand("""
            insert into order_lines (order_id, product_id, name, unit_price, quantity)
            select $1, * from unnest($2, $3, $4, $5)
            """, connection, transaction);
        orderLines.Parameters.Add(new() { Value = id });
        orderLines.Parameters.Add(new() { Value = lines.Select(l => l.ProductId).ToArray() });
        orderLines.Parameters.Add(new() { Value = lines.Select(l => l.Name).ToArray() });
        orderLines.Parameters.Add(new() { Value = lines.Select(l => l.UnitPrice).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Numeric });
        orderLines.Parameters.Add(new() { Value = lines.Select(l => l.Quantity).ToArray() });
        await orderLines.ExecuteNonQueryAsync(cancellationToken);
        await using var outbox = new NpgsqlCommand("""
            insert into outbox (event_id, type, occurred_at, visitor, lines)
            select 'order-' || id, 'order.placed', placed_at, $2, $3 from orders where id = $1
            """, connection, transaction);
        outbox.Parameters.Add(new() { Value = id });
        outbox.Parameters.Add(new() { Value = (object?)visitor ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        outbox.Parameters.Add(new() { Value = string.Join(',', lines.Select(l => $"{l.ProductId}:{l.Quantity}")) });
        await outbox.ExecuteNonQueryAsync(cancellationToken);
        try
        {
            await transaction.CommitAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or IOException or OperationCanceledException)
        {
            // The COMMIT was sent; whether the server applied it before the connection (or our patience) ended, nobody
            // here can tell. Saying "no order" would be a lie half the time: the caller retries with the same key.
            throw new OrderOutcomeUnknownException(ex);
        }
        return id;
    }

    private const string Schema = """
        create table if not exists orders (
            id bigint generated always as identity primary key,
            session_hash text not null,
            idempotency_key text not null,
            request_fingerprint text not null,
            email text not null,
            placed_at timestamptz not null default now(),
            constraint orders_idempotency unique (session_hash, idempotency_key)
        );
        create table if not exists outbox (
            id bigint generated always as identity primary key,
            event_id text not null unique,
            type text not null,
            occurred_at timestamptz not null,
            visitor text,
            lines text not null
        );
        create table if not exists order_lines (
            order_id bigint not null references orders (id),
            product_id bigint not null,
            name text not null,
            unit_price numeric(12, 2) not null check (unit_price >= 0),
            quantity int not null check (quantity > 0),
            primary key (order_id, product_id)
        );
        """;
}

/// <summary>The COMMIT of an order was sent but its answer never came: the order may or may not exist.</summary>
public sealed class OrderOutcomeUnknownException(Exception inner)
    : Exception("The outcome of the order's commit is unknown.", inner);
