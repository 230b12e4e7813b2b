using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Grpc.Core;

namespace LLark.Gateway;

/// <summary>
/// Refusals the gateway answers itself, in the caller's language: a trailers-only gRPC response (HTTP 200,
/// <c>application/grpc</c>, <c>grpc-status</c> and <c>grpc-message</c> in the headers, no body) for gRPC callers, and
/// an HTTP status with a JSON body for everyone else.
/// </summary>
public static class CallerErrors
{
    // A JSON body, never embedded in HTML: apostrophes and the like need no escaping.
    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// A gRPC call, by its content type, whatever the protocol. YARP lifts Kestrel's body limit only for gRPC over HTTP/2
    /// or later, but <see cref="BodyLimit"/> enforces the route's limit itself on every call this matches, so a gRPC
    /// call sent over HTTP/1.1 (the HTTP port) is held to the same limit, and answered in the same language, as one on
    /// the gRPC port; nothing here needs to know which calls YARP would have lifted.
    /// </summary>
    public static bool IsGrpc(HttpRequest request) =>
        request.ContentType is { } type && type.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase);

    /// <summary>As the endpoint's callers expect it: gRPC, OpenAI's error JSON on the OpenAI-compatible routes, or the gateway's JSON.</summary>
    public static Task WriteAsync(HttpContext context, StatusCode code, string message, TimeSpan? retryAfter = null)
    {
        if (IsGrpc(context.Request)) return WriteGrpcAsync(context.Response, code, message, retryAfter);
        if (context.GetEndpoint()?.Metadata.GetMetadata<OpenAiErrors.Shape>() is not null)
            return OpenAiErrors.WriteAsync(context, new FrontError(code, message, retryAfter));
        return WriteJsonAsync(context.Response, code, message, retryAfter);
    }

    public static Task WriteGrpcAsync(HttpResponse response, StatusCode code, string message, TimeSpan? retryAfter = null)
    {
        response.Clear();
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers["grpc-status"] = ((int)code).ToString(CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = PercentEncode(message);
        if (retryAfter is { } after) response.Headers["grpc-retry-pushback-ms"] = Milliseconds(after);
        // No body and no trailers: Kestrel ends the stream with the headers, which is what makes it trailers-only.
        return response.CompleteAsync();
    }

    public static Task WriteJsonAsync(HttpResponse response, StatusCode code, string message, TimeSpan? retryAfter = null) =>
        WriteErrorBodyAsync(response, code, ErrorJson(code, message), retryAfter);

    /// <summary>An HTTP error with <paramref name="json"/> as its body: the status for <paramref name="code"/>, and the headers it calls for.</summary>
    internal static async Task WriteErrorBodyAsync(HttpResponse response, StatusCode code, string json, TimeSpan? retryAfter)
    {
        response.Clear();
        response.StatusCode = HttpStatus(code);
        if (code == StatusCode.Unauthenticated) response.Headers.WWWAuthenticate = "Bearer";
        if (retryAfter is { } after)
            response.Headers.RetryAfter = ((long)Math.Ceiling(after.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        response.ContentType = "application/json";
        await response.WriteAsync(json).ConfigureAwait(false);
    }

    /// <summary><c>{"error":{"code":8,"status":"RESOURCE_EXHAUSTED","message":"..."}}</c>, as Google's JSON APIs answer.</summary>
    public static string ErrorJson(StatusCode code, string message) => JsonSerializer.Serialize(new
    {
        error = new { code = (int)code, status = StatusName(code), message },
    }, Json);

    /// <summary>The HTTP status for a gRPC status, as google.rpc.Code documents it.</summary>
    public static int HttpStatus(StatusCode code) => code switch
    {
        StatusCode.OK => 200,
        StatusCode.Cancelled => 499,
        StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.OutOfRange => 400,
        StatusCode.Unauthenticated => 401,
        StatusCode.PermissionDenied => 403,
        StatusCode.NotFound => 404,
        StatusCode.AlreadyExists or StatusCode.Aborted => 409,
        StatusCode.ResourceExhausted => 429,
        StatusCode.Unimplemented => 501,
        StatusCode.Unavailable => 503,
        StatusCode.DeadlineExceeded => 504,
        _ => 500,
    };

    /// <summary>UPPER_SNAKE, as in the gRPC spec: <c>RESOURCE_EXHAUSTED</c>.</summary>
    public static string StatusName(StatusCode code) => code switch
    {
        StatusCode.OK => "OK",
        StatusCode.InvalidArgument => "INVALID_ARGUMENT",
        StatusCode.DeadlineExceeded => "DEADLINE_EXCEEDED",
        StatusCode.NotFound => "NOT_FOUND",
        StatusCode.AlreadyExists => "ALREADY_EXISTS",
        StatusCode.PermissionDenied => "PERMISSION_DENIED",
        StatusCode.ResourceExhausted => "RESOURCE_EXHAUSTED",
        StatusCode.FailedPrecondition => "FAILED_PRECONDITION",
        StatusCode.OutOfRange => "OUT_OF_RANGE",
        StatusCode.DataLoss => "DATA_LOSS",
        _ => code.ToString().ToUpperInvariant(),
    };

    public static string Milliseconds(TimeSpan after) =>
        ((long)Math.Ceiling(Math.Max(0, after.TotalMilliseconds))).ToString(CultureInfo.InvariantCulture);

    /// <summary>grpc-message is percent-encoded UTF-8: every byte outside printable ASCII, and '%' itself.</summary>
    public static string PercentEncode(string message)
    {
        var sb = new StringBuilder(message.Length);
        foreach (byte b in Encoding.UTF8.GetBytes(message))
        {
            if (b is >= 0x20 and <= 0x7E && b != (byte)'%') sb.Append((char)b);
            else sb.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }
}
