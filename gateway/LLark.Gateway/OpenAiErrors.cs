using System.Text.Encodings.Web;
using System.Text.Json;
using Grpc.Core;

namespace LLark.Gateway;

/// <summary>
/// OpenAI's error body, <c>{"error":{"message","type","param","code"}}</c>, which OpenAI's SDKs turn into their own
/// error classes by HTTP status. The HTTP status is the one google.rpc.Code gives the gRPC status, as on the JSON front.
/// </summary>
public static class OpenAiErrors
{
    /// <summary>Endpoint metadata: refusals on this route (no key, over a limit) are answered in OpenAI's shape.</summary>
    public sealed class Shape
    {
        public static readonly Shape Instance = new();

        private Shape()
        {
        }
    }

    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Task WriteAsync(HttpContext context, FrontError error) =>
        CallerErrors.WriteErrorBodyAsync(context.Response, error.Code, Body(error), error.RetryAfter);

    /// <summary>
    /// <c>type</c> is OpenAI's word for the HTTP status; <c>code</c> is null for a bad request (<c>param</c> names the field,
    /// as OpenAI does) and otherwise the gRPC status in lower snake case (<c>not_found</c>, <c>resource_exhausted</c>), so a
    /// caller can tell an unknown embedding id from an unknown route.
    /// </summary>
    public static string Body(FrontError error) => JsonSerializer.Serialize(new
    {
        error = new
        {
            message = error.Message,
            type = Type(error.Code),
            param = error.Param,
            code = error.Code == StatusCode.InvalidArgument ? null : CallerErrors.StatusName(error.Code).ToLowerInvariant(),
        },
    }, Json);

    private static string Type(StatusCode code) => CallerErrors.HttpStatus(code) switch
    {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        429 => "rate_limit_error",
        499 => "request_cancelled",
        501 => "not_implemented_error",
        503 => "service_unavailable_error",
        504 => "timeout_error",
        _ => "server_error",
    };
}
