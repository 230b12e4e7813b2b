using System.Text;
using Google.Protobuf;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Language.V1;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace LLark.Gateway;

/// <summary>
/// HTTP and JSON for callers without gRPC: the unary calls as JSON in, JSON out (proto3's JSON mapping), and Generate
/// as server-sent events. Each is a gRPC call to the cluster, so statuses come back as the HTTP statuses that
/// google.rpc.Code names, with the same JSON error body the gateway's own refusals use.
/// </summary>
public static class JsonFront
{
    /// <summary>Answers show every field, zeros and empty strings included, so a caller need not know proto3's defaults.</summary>
    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    /// <summary>Deltas only carry what they have: the text, and token ids or log-probabilities when asked for.</summary>
    private static readonly JsonFormatter DeltaFormatter = JsonFormatter.Default;

    public static WebApplication MapJsonFront(this WebApplication app)
    {
        RouteGroupBuilder v1 = app.MapGroup("/v1");
        v1.MapGet("/model-info", ModelInfo).WithName("json-model-info");
        v1.MapPost("/embed", Embed).WithName("json-embed");
        v1.MapDelete("/embeddings/{id}", DeleteEmbedding).WithName("json-delete-embedding");
        v1.MapPost("/generate", Generate).WithName("json-generate");
        return app;
    }

    private static Task ModelInfo(HttpContext context, BackendClients backends, IOptions<GatewayOptions> options) =>
        Unary(context, BackendClients.LanguageCluster, async (deadline, ct) =>
            await backends.Language.GetModelInfoAsync(new GetModelInfoRequest(), deadline: deadline, cancellationToken: ct).ConfigureAwait(false),
            options.Value.Json);

    /// <summary>A JSON EmbedRequest, or the audio file itself as the body (any other content type; <c>?filename=</c> optional).</summary>
    private static async Task Embed(HttpContext context, BackendClients backends, IOptions<GatewayOptions> options)
    {
        JsonFrontOptions json = options.Value.Json;
        EmbedRequest request;
        if (IsJson(context.Request))
        {
            if (await ReadJson<EmbedRequest>(context, json).ConfigureAwait(false) is not { } parsed) return;
            request = parsed;
        }
        else
        {
            if (await ReadBody(context, json).ConfigureAwait(false) is not { } audio) return;
            request = new EmbedRequest { Audio = new AudioBytes { Data = ByteString.CopyFrom(audio), Filename = context.Request.Query["filename"].ToString() } };
        }
        await Unary(context, BackendClients.EncoderCluster, async (deadline, ct) =>
            await backends.Encoder.EmbedAsync(request, deadline: deadline, cancellationToken: ct).ConfigureAwait(false), json).ConfigureAwait(false);
    }

    private static Task DeleteEmbedding(HttpContext context, string id, BackendClients backends, IOptions<GatewayOptions> options) =>
        Unary(context, BackendClients.EncoderCluster, async (deadline, ct) =>
            await backends.Encoder.DeleteEmbeddingAsync(new DeleteEmbeddingRequest { EmbeddingId = id }, deadline: deadline, cancellationToken: ct).ConfigureAwait(false),
            options.Value.Json);

    /// <summary>
    /// A JSON GenerateRequest in; <c>text/event-stream</c> out: <c>data: {TokenDelta}</c> per delta, then
    /// <c>event: final</c> with the GenerateFinal (or <c>event: error</c> if the stream fails after it began). A refusal
    /// before the first frame is a plain HTTP error. The caller going away cancels the backend call.
    /// </summary>
    private static async Task Generate(HttpContext context, BackendClients backends, IOptions<GatewayOptions> options, ILoggerFactory loggers)
    {
        JsonFrontOptions json = options.Value.Json;
        if (await ReadJson<GenerateRequest>(context, json).ConfigureAwait(false) is not { } request) return;
        CancellationToken aborted = context.RequestAborted;
        using AsyncServerStreamingCall<GenerateResponse> call = backends.Language.Generate(request,
            deadline: DateTime.UtcNow + json.GenerateTimeout, cancellationToken: aborted);
        bool more;
        try
        {
            more = await call.ResponseStream.MoveNext(aborted).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            await WriteRpcError(context, BackendClients.LanguageCluster, e).ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            return;
        }

        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        try
        {
            for (; more; more = await call.ResponseStream.MoveNext(aborted).ConfigureAwait(false))
            {
                GenerateResponse frame = call.ResponseStream.Current;
                if (frame.FrameCase == GenerateResponse.FrameOneofCase.Delta) await Event(context, null, DeltaFormatter.Format(frame.Delta), aborted).ConfigureAwait(false);
                else if (frame.FrameCase == GenerateResponse.FrameOneofCase.Final) await Event(context, "final", Formatter.Format(frame.Final), aborted).ConfigureAwait(false);
            }
        }
        catch (RpcException e) when (!aborted.IsCancellationRequested)
        {
            await Event(context, "error", CallerErrors.ErrorJson(e.StatusCode, Detail(BackendClients.LanguageCluster, e)), aborted).ConfigureAwait(false);
        }
        catch (Exception e) when (aborted.IsCancellationRequested && e is OperationCanceledException or RpcException or IOException)
        {
            ILogger logger = loggers.CreateLogger(typeof(JsonFront).FullName!);
            Log.SseCallerLeft(logger);
        }
    }

    private static async Task Event(HttpContext context, string? name, string data, CancellationToken cancellationToken)
    {
        string text = name is null ? $"data: {data}\n\n" : $"event: {name}\ndata: {data}\n\n";
        await context.Response.WriteAsync(text, Encoding.UTF8, cancellationToken).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task Unary<T>(HttpContext context, string cluster, Func<DateTime, CancellationToken, Task<T>> call, JsonFrontOptions json) where T : IMessage
    {
        T response;
        try
        {
            response = await call(DateTime.UtcNow + json.UnaryTimeout, context.RequestAborted).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            await WriteRpcError(context, cluster, e).ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return;
        }
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(Formatter.Format(response), context.RequestAborted).ConfigureAwait(false);
    }

    private static Task WriteRpcError(HttpContext context, string cluster, RpcException e)
    {
        TimeSpan? retryAfter = e.Trailers.GetValue("grpc-retry-pushback-ms") is { } ms && long.TryParse(ms, out long pushback)
            ? TimeSpan.FromMilliseconds(pushback) : null;
        return CallerErrors.WriteJsonAsync(context.Response, e.StatusCode, Detail(cluster, e), retryAfter);
    }

    /// <summary>A backend's own detail as it is; a failure to reach one said without the pod's address, as the proxy says it.</summary>
    private static string Detail(string cluster, RpcException e) =>
        e.StatusCode == StatusCode.Unavailable && e.Status.DebugException is not null ? $"the {cluster} service is unavailable; retry shortly" : e.Status.Detail;

    private static bool IsJson(HttpRequest request) =>
        request.ContentType is { } type && type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase);

    /// <summary>The body as a message, or null after answering 400 with what is wrong.</summary>
    private static async Task<T?> ReadJson<T>(HttpContext context, JsonFrontOptions json) where T : class, IMessage<T>, new()
    {
        if (await ReadBody(context, json).ConfigureAwait(false) is not { } body) return null;
        try
        {
            return JsonParser.Default.Parse<T>(Encoding.UTF8.GetString(body));
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidJsonException or FormatException)
        {
            await CallerErrors.WriteJsonAsync(context.Response, StatusCode.InvalidArgument,
                $"the body is not a JSON {typeof(T).Name}: {e.Message}").ConfigureAwait(false);
            return null;
        }
    }

    private static async Task<byte[]?> ReadBody(HttpContext context, JsonFrontOptions json)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = json.MaxRequestBytes;
        using var buffer = new MemoryStream();
        try
        {
            await context.Request.Body.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            await CallerErrors.WriteJsonAsync(context.Response, StatusCode.InvalidArgument,
                $"the body is larger than this gateway's limit of {json.MaxRequestBytes} bytes").ConfigureAwait(false);
            return null;
        }
        return buffer.ToArray();
    }
}
