using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// A request the framework could not bind (a body that is not JSON, a field of the wrong type, a query value that is not
/// a number) is the client's error, and the answer names what was wrong: 400 ValidationProblem with the field's name as
/// the key (<c>productId</c>, <c>page</c>; <c>body</c> when the body as a whole is unreadable), in every environment.
/// Other refusals the framework raises keep their status (413 for a body past its limit) as a ProblemDetails.
/// </summary>
public sealed partial class BadRequestHandler(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not BadHttpRequestException bad || context.Response.HasStarted)
        {
            return false;
        }
        context.Response.StatusCode = bad.StatusCode;
        var field = bad.StatusCode == StatusCodes.Status400BadRequest ? FieldOf(bad) : null;
        var details = field is null
            ? new Microsoft.AspNetCore.Mvc.ProblemDetails { Status = bad.StatusCode }
            : new HttpValidationProblemDetails(new Dictionary<string, string[]>
            {
                [field] = [field == "body" ? "The body could not be read as the JSON object this route takes." : $"Not a valid value for '{field}'."],
            }) { Status = bad.StatusCode };
        return await problems.TryWriteAsync(new ProblemDetailsContext { HttpContext = context, Exception = exception, ProblemDetails = details });
    }

    /// <summary>The field a binding failure is about: the JSON path's last member, or the parameter's name.</summary>
    public static string? FieldOf(BadHttpRequestException bad)
    {
        if (bad.InnerException is JsonException json)
        {
            return FieldOf(json);
        }
        // "Failed to bind parameter \"int page\" from \"abc\"." / "Required parameter \"AddItem body\" was not provided from body."
        return Parameter().Match(bad.Message) is { Success: true } parameter ? parameter.Groups["name"].Value : null;
    }

    /// <summary>The member a JSON reading failure is about (<c>$.productId</c>: <c>productId</c>), or <c>body</c> for the whole.</summary>
    public static string FieldOf(JsonException json) =>
        json.Path is { } path && LastMember().Match(path) is { Success: true } member ? member.Groups["name"].Value : "body";

    [GeneratedRegex(@"(?:\.(?<name>[A-Za-z_][A-Za-z0-9_]*)|\['(?<name>[^']+)'\])(?:\[\d+\])*$")]
    private static partial Regex LastMember();

    [GeneratedRegex("parameter \"[^\" ]+ (?<name>[^\"]+)\"")]
    private static partial Regex Parameter();
}
