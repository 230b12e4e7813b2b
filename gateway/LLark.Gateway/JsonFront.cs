using System.Text;
using Google.Protobuf;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Language.V1;
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

    /// <summary>The Google-style JSON error body that the gateway's own refusals use too.</summary>
    private static readonly FrontErrorWriter Refuse = (context, error) =>
        CallerErrors.WriteJsonAsync(context.Response, error.Code, error.Message, error.RetryAfter);

    private static async Task ModelInfo(HttpContext context, BackendClients backends, IOptions<GatewayOptions> options)
    {
        if (await BackendCalls.ModelInfoAsync(context, backends, options.Value.Json, Refuse).ConfigureAwait(false) is { } info)
            await WriteAsync(context, info).ConfigureAwait(false);
    }

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
            if (await BackendCalls.ReadBodyAsync(context, json, Refuse).ConfigureAwait(false) is not { } audio) return;
            request = new EmbedRequest { Audio = new AudioBytes { Data = ByteString.CopyFrom(audio), Filename = context.Request.Query["filename"].ToString() } };
        }
        if (await BackendCalls.EmbedAsync(context, backends, request, json, Refuse).ConfigureAwait(false) is { } embedded)
            await WriteAsync(context, embedded).ConfigureAwait(false);
    }

    private static async Task DeleteEmbedding(HttpContext context, string id, BackendClients backends, IOptions<GatewayOptions> options)
    {
        DeleteEmbeddingResponse? deleted = await BackendCalls.UnaryAsync(context, BackendClients.EncoderCluster, async (deadline, ct) =>
            await backends.Encoder.DeleteEmbeddingAsync(new DeleteEmbeddingRequest { EmbeddingId = id }, deadline: deadline, cancellationToken: ct).ConfigureAwait(false),
            options.Value.Json.UnaryTimeout, Refuse).ConfigureAwait(false);
        if (deleted is not null) await WriteAsync(context, deleted).ConfigureAwait(false);
    }

    /// <summary>
    /// A JSON GenerateRequest in; <c>text/event-stream</c> out: <c>data: {TokenDelta}</c> per delta, then
    /// <c>event: final</c> with the GenerateFinal (or <c>event: error</c> if the stream fails after it began). A refusal
    /// before the first frame is a plain HTTP error. The caller going away cancels the backend call.
    /// </summary>
    private static async Task Generate(HttpContext context, BackendClients backends, IOptions<GatewayOptions> options, ILoggerFactory loggers)
    {
        JsonFrontOptions json = options.Value.Json;
        if (await ReadJson<GenerateRequest>(context, json).ConfigureAwait(false) is not { } request) return;
        using OpenGenerateCall? stream = await BackendCalls.OpenGenerateAsync(context, backends, request, json, Refuse).ConfigureAwait(false);
        if (stream is null) return;
        BackendCalls.BeginEventStream(context);
        await stream.PumpAsync(
            (frame, ct) => frame.FrameCase switch
            {
                GenerateResponse.FrameOneofCase.Delta => BackendCalls.WriteEventAsync(context, null, DeltaFormatter.Format(frame.Delta), ct),
                GenerateResponse.FrameOneofCase.Final => BackendCalls.WriteEventAsync(context, "final", Formatter.Format(frame.Final), ct),
                _ => Task.CompletedTask,
            },
            (error, ct) => BackendCalls.WriteEventAsync(context, "error", CallerErrors.ErrorJson(error.Code, error.Message), ct),
            loggers.CreateLogger(typeof(JsonFront).FullName!)).ConfigureAwait(false);
    }

    private static async Task WriteAsync(HttpContext context, IMessage response)
    {
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(Formatter.Format(response), context.RequestAborted).ConfigureAwait(false);
    }

    private static bool IsJson(HttpRequest request) =>
        request.ContentType is { } type && type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase);

    /// <summary>The body as a message, or null after answering 400 with what is wrong.</summary>
    private static async Task<T?> ReadJson<T>(HttpContext context, JsonFrontOptions json) where T : class, IMessage<T>, new()
    {
        if (await BackendCalls.ReadBodyAsync(context, json, Refuse).ConfigureAwait(false) is not { } body) return null;
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
}
