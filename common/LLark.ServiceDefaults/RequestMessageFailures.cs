using System.Globalization;
using Google.Protobuf;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace LLark.ServiceDefaults;

/// <summary>
/// Gives a real status to a request message that fails before any handler or interceptor sees it. grpc-dotnet reads and
/// parses the message itself and answers a parse failure (a malformed protobuf, a string field that is not UTF-8) with
/// UNKNOWN "Exception was thrown by handler.", and a message over the size limit with a detail that does not say the
/// limit. Such an answer has not started when grpc-dotnet sets its status (the status travels in the headers, trailers
/// only), so it is rewritten here as the headers go out: INVALID_ARGUMENT for what is malformed, RESOURCE_EXHAUSTED
/// naming the limit for what is too large.
/// </summary>
internal sealed class RequestMessageFailures(RequestDelegate next, IOptions<GrpcServiceOptions> grpc)
{
    /// <summary>grpc-dotnet's own detail when a message is over <see cref="GrpcServiceOptions.MaxReceiveMessageSize"/>.</summary>
    private const string GrpcTooLarge = "Received message exceeds the maximum configured message size.";

    public Task InvokeAsync(HttpContext context)
    {
        if (context.Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true)
        {
            context.Response.OnStarting(() =>
            {
                Rewrite(context);
                return Task.CompletedTask;
            });
        }
        return next(context);
    }

    private void Rewrite(HttpContext context)
    {
        if (context.Features.Get<IServerCallContextFeature>()?.ServerCallContext.Status is not { } status) return;
        IHeaderDictionary headers = context.Response.Headers;
        if (!headers.ContainsKey("grpc-status")) return;
        (StatusCode code, string detail)? replacement = status switch
        {
            { StatusCode: StatusCode.ResourceExhausted, Detail: GrpcTooLarge } or { DebugException: BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } } =>
                (StatusCode.ResourceExhausted, $"the request message is larger than this service's limit of {grpc.Value.MaxReceiveMessageSize} bytes"),
            // Protobuf reports a string field that is not UTF-8 this way too.
            { StatusCode: StatusCode.Unknown, DebugException: InvalidProtocolBufferException e } =>
                (StatusCode.InvalidArgument, $"the request message is not a valid protobuf encoding: {e.Message}"),
            _ => null,
        };
        if (replacement is not { } r) return;
        headers["grpc-status"] = ((int)r.code).ToString(CultureInfo.InvariantCulture);
        // grpc-message is percent-encoded UTF-8; escaping more than the minimum is allowed, and these details are ASCII.
        headers["grpc-message"] = Uri.EscapeDataString(r.detail);
    }
}
