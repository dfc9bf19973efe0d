using Npgsql;
using ShopReference.Catalog.Model;

namespace ShopReference.Catalog.Data;

/// <summary>The outcome of a conditional update.</summary>
public enum UpdateOutcome
{
    Updated,
    NotFound,
    VersionMismatch,
    UnknownCategory,
}

/// <summary>Plain SQL over the shared <see cref="NpgsqlDataSource"/>: the origin every cache pattern protects.</summary>
public sealed class CatalogDatabase(NpgsqlDataSource dataSource)
{
    private const string Columns = "id, sku, name, description, category, price, stock, version, updated_at";

    public async Task<Product?> GetAsync(long id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"select {Columns} from products where id = $1");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = id });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    public async Task<ProductPage> ListAsync(string? category, int page, int pageSize, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            $"select {Columns}, count(*) over () from products where ($1::text is null or category = $1) order by id limit $2 offset $3");
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)category ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = pageSize });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = (page - 1) * pageSize });
        var items = new List<Product>();
        long total = 0;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            items.Add(Read(reader));
            total = reader.GetInt64(9);
        }
        return new ProductPage(items, page, pageSize, total);
    }

    /// <summary>
    /// Optimistic concurrency in one statement: the row changes only if its version is still <paramref name="expectedVersion"/>,
    /// so of two writers holding the same version exactly one wins; the row lock orders them.
    /// </summary>
    public async Task<(UpdateOutcome Outcome, Product? Product)> UpdateAsync(long id, int expectedVersion, ProductUpdate update, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            $"""
            update products set name = $3, description = $4, category = $5, price = $6, stock = $7,
                   version = version + 1, updated_at = now()
            where id = $1 and version = $2
            returning {Columns}
            """);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = id });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = expectedVersion });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = update.Name! });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = update.Description! });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = update.Category! });
        command.Parameters.Add(new NpgsqlParameter<decimal> { TypedValue = update.Price!.Value });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = update.Stock!.Value });
        try
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (await reader.ReadAsync(cancellationToken))
            {
                return (UpdateOutcome.Updated, Read(reader));
            }
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.ForeignKeyViolation)
        {
            return (UpdateOutcome.UnknownCategory, null);
        }
        return (await GetAsync(id, cancellationToken) is null ? UpdateOutcome.NotFound : UpdateOutcome.VersionMismatch, null);
    }

    internal static Product Read(NpgsqlDataReader reader) => new(
        reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
        reader.GetDecimal(5), reader.GetInt32(6), reader.GetInt32(7), reader.GetFieldValue<DateTimeOffset>(8));
}
