using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using ShopReference.RateLimit.Auth;
using ShopReference.RateLimit.RateLimiting;

namespace ShopReference.RateLimit.Apis;

/// <summary>The token response of RFC 6749 §5.1.</summary>
public sealed record TokenResponse(
    [property: System.Text.Json.Serialization.JsonPropertyName("access_token")] string AccessToken,
    [property: System.Text.Json.Serialization.JsonPropertyName("token_type")] string TokenType,
    [property: System.Text.Json.Serialization.JsonPropertyName("expires_in")] int ExpiresIn,
    [property: System.Text.Json.Serialization.JsonPropertyName("scope")] string Scope);

/// <summary>
/// <c>POST /api/auth/token</c>: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4). A client authenticates with
/// its name and key (HTTP Basic, or <c>client_id</c>/<c>client_secret</c> in the form) and receives a five-minute
/// bearer token carrying its permissions, or the subset it asks for in <c>scope</c>. Errors are ProblemDetails that
/// also carry the RFC's <c>error</c> code. A refused secret counts against the caller's address like a refused key.
/// </summary>
public static class TokenApi
{
    public static IEndpointRouteBuilder MapTokenApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("api/auth/token", IssueAsync)
            .WithName("IssueToken")
            .WithTags("Auth")
            .WithSummary("OAuth 2.0 client credentials: exchanges a client's name and key for a short-lived bearer token with its permissions.")
            .DisableAntiforgery()
            .Accepts<IFormCollection>("application/x-www-form-urlencoded");
        return app;
    }

    /// <summary>The longest value a form field may hold (client ids, keys and scopes are far shorter).</summary>
    public const int MaxFieldLength = 1024;

    public static async Task<Results<Ok<TokenResponse>, ProblemHttpResult>> IssueAsync(
        HttpContext http, ApiClientRegistry clients, TokenIssuer issuer, CredentialFailures failures, ClientIdentityResolver identities)
    {
        http.Response.Headers.CacheControl = "no-store";
        if (!http.Request.HasFormContentType)
        {
            return Error(StatusCodes.Status400BadRequest, "invalid_request", "The body must be application/x-www-form-urlencoded.");
        }
        IFormCollection form;
        try
        {
            form = await ReadFormAsync(http);
        }
        catch (Exception ex) when (ex is InvalidDataException or BadHttpRequestException { StatusCode: not StatusCodes.Status413PayloadTooLarge })
        {
            return Error(StatusCodes.Status400BadRequest, "invalid_request", "The form could not be read.");
        }
        // Refused by name, so that a client learns which of its fields is wrong.
        if (form.FirstOrDefault(f => f.Value.Any(v => v?.Length > MaxFieldLength)) is { Key: { } tooLong })
        {
            return Error(StatusCodes.Status400BadRequest, "invalid_request", $"{tooLong} is longer than {MaxFieldLength} characters.");
        }
        if (form.FirstOrDefault(f => f.Value.Any(v => v?.Any(char.IsControl) == true)) is { Key: { } unreadable })
        {
            return Error(StatusCodes.Status400BadRequest, "invalid_request", $"{unreadable} holds control characters.");
        }
        if (form["grant_type"] is not { Count: 1 } grant)
        {
            return Error(StatusCodes.Status400BadRequest, "invalid_request", "grant_type is required, once.");
        }
        if (grant[0] != "client_credentials")
        {
            return Error(StatusCodes.Status400BadRequest, "unsupported_grant_type", "Only grant_type=client_credentials is supported.");
        }
        if (ReadClientCredentials(http, form) is not { } credentials)
        {
            return Error(StatusCodes.Status400BadRequest, "invalid_request",
                "Authenticate the client once: HTTP Basic (client id and key) or client_id and client_secret in the form.");
        }

        // The right key is honoured even from an address that has used up its refused attempts (see CredentialFailures).
        if (clients.Authenticate(credentials.Id, credentials.Secret) is not { } client)
        {
            if (await failures.FailedAsync(identities.AddressOf(http)) is { } blocked)
            {
                http.Response.Headers.RetryAfter = Math.Max(1, RateLimitMiddleware.Seconds(blocked)).ToString(System.Globalization.CultureInfo.InvariantCulture);
                return Error(StatusCodes.Status429TooManyRequests, "slow_down", "Too many refused credentials from this address.");
            }
            if (credentials.FromBasic)
            {
                http.Response.Headers.WWWAuthenticate = "Basic realm=\"shopreference\"";
            }
            return Error(StatusCodes.Status401Unauthorized, "invalid_client", "Unknown client or wrong key.");
        }

        var granted = client.Permissions;
        if (form["scope"] is { Count: > 0 } scope)
        {
            var asked = scope.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (scope.Count > 1 || asked.Any(p => !client.Permissions.Contains(p, StringComparer.Ordinal)))
            {
                return Error(StatusCodes.Status400BadRequest, "invalid_scope", "scope may only name permissions this client holds.");
            }
            granted = [.. asked.Distinct(StringComparer.Ordinal)];
        }
        var token = issuer.AccessToken(credentials.Id, granted);
        return TypedResults.Ok(new TokenResponse(token, "Bearer", (int)TokenIssuer.AccessTokenLifetime.TotalSeconds, string.Join(' ', granted)));
    }

    // The form as sent, field by field: the framework's reader refuses a whole form for one bad value without naming it.
    // The route's body limit (RequestBodyLimits) bounds what is read.
    private static async Task<IFormCollection> ReadFormAsync(HttpContext http)
    {
        using var body = new StreamReader(http.Request.Body, Encoding.UTF8);
        var text = await body.ReadToEndAsync(http.RequestAborted);
        var reader = new Microsoft.AspNetCore.WebUtilities.FormReader(text) { ValueCountLimit = 16, KeyLengthLimit = 64, ValueLengthLimit = 16 * 1024 };
        return new FormCollection(await reader.ReadFormAsync(http.RequestAborted));
    }

    private static (string Id, string Secret, bool FromBasic)? ReadClientCredentials(HttpContext http, IFormCollection form)
    {
        var inForm = form.ContainsKey("client_id") || form.ContainsKey("client_secret");
        if (AuthenticationHeaderValue.TryParse(http.Request.Headers.Authorization, out var header) &&
            header.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase) && header.Parameter is { Length: <= 512 } encoded)
        {
            if (inForm)
            {
                return null; // RFC 6749 §2.3: one authentication method per request
            }
            try
            {
                var pair = Encoding.UTF8.GetString(Convert.FromBase64String(encoded));
                var colon = pair.IndexOf(':');
                return colon > 0
                    ? (Uri.UnescapeDataString(pair[..colon]), Uri.UnescapeDataString(pair[(colon + 1)..]), true)
                    : null;
            }
            catch (FormatException)
            {
                return null;
            }
        }
        return form["client_id"] is { Count: 1 } id && form["client_secret"] is { Count: 1 } secret && http.Request.Headers.Authorization.Count == 0
            ? (id.ToString(), secret.ToString(), false)
            : null;
    }

    private static ProblemHttpResult Error(int status, string error, string detail) =>
        TypedResults.Problem(new ProblemDetails
        {
            Status = status,
            Title = error,
            Detail = detail,
            Extensions = { ["error"] = error, ["error_description"] = detail },
        });
}
