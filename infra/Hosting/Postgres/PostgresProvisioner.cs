using Microsoft.Extensions.Configuration;
using Npgsql;

namespace ShopReference.Hosting;

/// <summary>One service's database and the login role that owns it, with its password; <see cref="Replication"/> for the change feed's.</summary>
public sealed record DatabaseGrant(string Database, string Role, string Password, bool Replication = false);

/// <summary>
/// Least privilege in PostgreSQL: each service logs in as its own role, which owns its database and nothing else. No
/// role is a superuser or may create roles or databases; only a role marked for replication has REPLICATION, for its
/// change feed, and physical replication (which would stream every database) stays refused to it. It runs as the
/// superuser, at every start: a changed password applies, and a data folder from before is brought to the same state.
/// In run mode <see cref="PostgresHostingExtensions.AddPostgresServer"/> calls it once the server answers, unless
/// <see cref="PostgresHostingExtensions.WithProvisioningWorker"/> named a worker that does, in both modes.
/// </summary>
public static class PostgresProvisioner
{
    /// <summary>Creates or updates each role and database of <paramref name="databases"/>; safe to run at every start.</summary>
    public static async Task ProvisionAsync(string superuserConnectionString, IReadOnlyList<DatabaseGrant> databases, CancellationToken cancellationToken)
    {
        var server = new NpgsqlConnectionStringBuilder(superuserConnectionString) { Pooling = false };
        await using (var connection = new NpgsqlConnection(server.ConnectionString))
        {
            await connection.OpenAsync(cancellationToken);
            foreach (var database in databases)
            {
                await EnsureRoleAsync(connection, database, database.Password, cancellationToken);
                await EnsureDatabaseAsync(connection, database, cancellationToken);
            }
            // The maintenance databases are not any service's business.
            await ExecuteAsync(connection, "revoke connect on database postgres from public; revoke connect on database template1 from public", cancellationToken);
        }
        foreach (var database in databases)
        {
            await TransferOwnershipAsync(new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = database.Database }.ConnectionString,
                database.Role, cancellationToken);
        }
    }

    /// <summary>
    /// What <see cref="PostgresHostingExtensions.WithProvisioningWorker"/> hands its worker: the superuser's
    /// <c>ConnectionStrings:postgres</c> and <c>Databases:{n}:Database</c>, <c>:Role</c>, <c>:Password</c>, <c>:Replication</c>.
    /// </summary>
    public static (string Server, IReadOnlyList<DatabaseGrant> Databases) ReadGrants(IConfiguration configuration)
    {
        var server = configuration.GetConnectionString("postgres");
        if (string.IsNullOrEmpty(server))
        {
            throw new InvalidOperationException("ConnectionStrings:postgres (the superuser's connection string) is required.");
        }
        var databases = configuration.GetSection("Databases").GetChildren()
            .Select(d => new DatabaseGrant(d["Database"] ?? "", d["Role"] ?? "", d["Password"] ?? "", bool.TryParse(d["Replication"], out var replication) && replication))
            .ToList();
        if (databases.Count == 0)
        {
            throw new InvalidOperationException("Databases:0:Database, :Role and :Password are required: nothing to provision.");
        }
        return (server, databases);
    }

    private static async Task EnsureRoleAsync(NpgsqlConnection connection, DatabaseGrant database, string password, CancellationToken cancellationToken)
    {
        if (!IsIdentifier(database.Role) || password.Length == 0 || !password.All(char.IsAsciiLetterOrDigit))
        {
            throw new InvalidOperationException($"Role '{database.Role}' needs a name of a-z and '_' and a password of letters and digits.");
        }
        await using (var exists = new NpgsqlCommand("select 1 from pg_roles where rolname = $1", connection) { Parameters = { new() { Value = database.Role } } })
        {
            if (await exists.ExecuteScalarAsync(cancellationToken) is null)
            {
                await ExecuteAsync(connection, $"create role {database.Role} login", cancellationToken);
            }
        }
        // A password cannot be a bind parameter in ALTER ROLE; it is letters and digits only (checked above).
        var replication = database.Replication ? "replication" : "noreplication";
        await ExecuteAsync(connection,
            $"alter role {database.Role} with login nosuperuser nocreatedb nocreaterole inherit nobypassrls {replication} password '{password}'",
            cancellationToken);
    }

    private static async Task EnsureDatabaseAsync(NpgsqlConnection connection, DatabaseGrant database, CancellationToken cancellationToken)
    {
        if (!IsIdentifier(database.Database))
        {
            throw new InvalidOperationException($"Database name '{database.Database}' must be of a-z and '_'.");
        }
        await using (var exists = new NpgsqlCommand("select 1 from pg_database where datname = $1", connection) { Parameters = { new() { Value = database.Database } } })
        {
            if (await exists.ExecuteScalarAsync(cancellationToken) is null)
            {
                await ExecuteAsync(connection, $"create database {database.Database} owner {database.Role}", cancellationToken);
            }
        }
        await ExecuteAsync(connection,
            $"alter database {database.Database} owner to {database.Role}; revoke all on database {database.Database} from public", cancellationToken);
    }

    // Tables and publications created by an earlier version of the app (as the superuser) pass to the service's role.
    private static async Task TransferOwnershipAsync(string connectionString, string role, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await ExecuteAsync(connection, $$"""
            do $$
            declare item record;
            begin
              for item in select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
                          where n.nspname = 'public' and c.relkind in ('r', 'p') and pg_get_userbyid(c.relowner) <> '{{role}}'
              loop
                execute format('alter table %I owner to {{role}}', item.relname);
              end loop;
              for item in select pubname from pg_publication where pg_get_userbyid(pubowner) <> '{{role}}'
              loop
                execute format('alter publication %I owner to {{role}}', item.pubname);
              end loop;
            end $$;
            """, cancellationToken);
    }

    private static bool IsIdentifier(string name) => name.Length is > 0 and <= 63 && name.All(c => c is (>= 'a' and <= 'z') or '_');

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
