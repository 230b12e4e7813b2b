using System.Globalization;
using System.Security.Cryptography;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Language.V1;
using Microsoft.Extensions.Options;

namespace LLark.Gateway;

/// <summary>
/// OpenAI's chat completions and models API on the HTTP port, so OpenAI's SDKs and tools can ask LLark about a clip:
/// <c>POST /v1/chat/completions</c> (streamed as OpenAI's chunks, or whole) and <c>GET /v1/models</c>. Behind the same
/// keys and limits as every call, and over the same backend calls as the JSON front (<see cref="BackendCalls"/>): an
/// uploaded clip is embedded first, so its id comes back for the next question, then Generate is asked by that id.
/// </summary>
public static class OpenAiFront
{
    /// <summary>The content id of the conversation's clip, on every answer about one.</summary>
    public const string EmbeddingIdHeader = "x-llark-embedding-id";

    /// <summary>The served model has no creation time to report; OpenAI's schema needs a number.</summary>
    private const long Created = 0;

    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly FrontErrorWriter Refuse = OpenAiErrors.WriteAsync;

    public static WebApplication MapOpenAiFront(this WebApplication app)
    {
        RouteGroupBuilder v1 = app.MapGroup("/v1").WithMetadata(OpenAiErrors.Shape.Instance);
        v1.MapPost("/chat/completions", ChatCompletions).WithName("openai-chat-completions");
        v1.MapGet("/models", Models).WithName("openai-models");
        v1.MapGet("/models/{id}", Model).WithName("openai-model");
        return app;
    }

    private static async Task Models(HttpContext context, BackendClients backends, IOptions<GatewayOptions> options)
    {
        if (await BackendCalls.ModelInfoAsync(context, backends, options.Value.Json, Refuse).ConfigureAwait(false) is not { } info) return;
        await WriteJson(context, new JsonObject { ["object"] = "list", ["data"] = new JsonArray(ModelObject(info)) }).ConfigureAwait(false);
    }

    private static async Task Model(HttpContext context, string id, BackendClients backends, IOptions<GatewayOptions> options)
    {
        if (await BackendCalls.ModelInfoAsync(context, backends, options.Value.Json, Refuse).ConfigureAwait(false) is not { } info) return;
        if (id != info.ModelId)
        {
            await Refuse(context, new FrontError(StatusCode.NotFound, $"the model '{id}' does not exist; this gateway serves '{info.ModelId}'", Param: "model"))
                .ConfigureAwait(false);
            return;
        }
        await WriteJson(context, ModelObject(info)).ConfigureAwait(false);
    }

    private static JsonObject ModelObject(ModelInfo info) => new()
    {
        ["id"] = info.ModelId,
        ["object"] = "model",
        ["created"] = Created,
        ["owned_by"] = "llark",
    };

    private static async Task ChatCompletions(HttpContext context, BackendClients backends, IOptions<GatewayOptions> options, ILoggerFactory loggers)
    {
        JsonFrontOptions json = options.Value.Json;
        if (await BackendCalls.ReadBodyAsync(context, json, Refuse).ConfigureAwait(false) is not { } body) return;
        OpenAiChatRequest request;
        try
        {
            request = OpenAiChatRequest.Parse(body);
        }
        catch (OpenAiRequestException e)
        {
            await Refuse(context, new FrontError(StatusCode.InvalidArgument, e.Message, Param: e.Param)).ConfigureAwait(false);
            return;
        }

        GenerateRequest generate = request.Generate;
        string? embeddingId = null;
        if (request.Clip is UploadedClip upload)
        {
            var embed = new EmbedRequest { Audio = new AudioBytes { Data = ByteString.CopyFrom(upload.Data), Filename = upload.Param } };
            // The encoder's refusal of the file (not audio, too short) names the part that carried it.
            string dataParam = upload.Param + ".input_audio.data";
            FrontErrorWriter refuseClip = (c, e) => Refuse(c, e.Code == StatusCode.InvalidArgument ? e with { Param = dataParam } : e);
            if (await BackendCalls.EmbedAsync(context, backends, embed, json, refuseClip).ConfigureAwait(false) is not { } embedded) return;
            embeddingId = embedded.EmbeddingId;
        }
        else if (request.Clip is CachedClip cached)
        {
            embeddingId = cached.EmbeddingId;
        }
        if (embeddingId is not null) generate.EmbeddingId = embeddingId;

        FrontErrorWriter refuseGenerate = (c, e) => Refuse(c, e.Code == StatusCode.InvalidArgument || e.Code == StatusCode.NotFound
            ? e with { Param = ParamOf(e.Message, request.Clip) } : e);
        using OpenGenerateCall? stream = await BackendCalls.OpenGenerateAsync(context, backends, generate, json, refuseGenerate).ConfigureAwait(false);
        if (stream is null) return;
        if (embeddingId is not null) context.Response.Headers[EmbeddingIdHeader] = embeddingId;
        var completion = new Completion("chatcmpl-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12)),
            DateTimeOffset.UtcNow.ToUnixTimeSeconds(), request.Model, embeddingId);
        ILogger logger = loggers.CreateLogger(typeof(OpenAiFront).FullName!);
        if (request.Stream) await StreamChunks(context, stream, request, completion, logger).ConfigureAwait(false);
        else await Whole(context, stream, request, completion, logger).ConfigureAwait(false);
    }

    /// <summary>The contract's fields as this API names them, for the language service's refusals.</summary>
    private static readonly (string Field, string Param)[] ContractParams =
    [
        ("stopping.max_new_tokens", "max_tokens"), ("stopping.stop", "stop"), ("sampling.temperature", "temperature"), ("sampling.top_p", "top_p"),
        ("sampling.top_k", "top_k"), ("sampling.repetition_penalty", "repetition_penalty"), ("sampling.seed", "seed"), ("turns", "messages"),
    ];

    /// <summary>
    /// The request field a language service refusal is about: its detail starts with the contract's field name
    /// (<c>stopping.max_new_tokens: ...</c>), and an unknown or malformed embedding id is the clip part's.
    /// </summary>
    private static string? ParamOf(string detail, ChatClip? clip)
    {
        if (clip is CachedClip && detail.StartsWith("embedding_id", StringComparison.Ordinal)) return clip.Param + "." + OpenAiChatRequest.EmbeddingPartType + ".id";
        foreach ((string field, string param) in ContractParams)
        {
            if (detail.StartsWith(field, StringComparison.Ordinal) && detail.Length > field.Length && detail[field.Length] is ':' or '[' or '.') return param;
        }
        return null;
    }

    private sealed record Completion(string Id, long Created, string Model, string? EmbeddingId)
    {
        public JsonObject Head(string type) => new()
        {
            ["id"] = Id,
            ["object"] = type,
            ["created"] = Created,
            ["model"] = Model,
            ["system_fingerprint"] = null,
        };

        /// <summary>The extension field: the clip's id, for the next question's <c>llark_embedding</c> part.</summary>
        public void AddExtension(JsonObject o)
        {
            if (EmbeddingId is not null) o["llark"] = new JsonObject { ["embedding_id"] = EmbeddingId };
        }
    }

    /// <summary><c>chat.completion</c>: the whole answer once the stream has ended; a failure before then is a plain HTTP error.</summary>
    private static async Task Whole(HttpContext context, OpenGenerateCall stream, OpenAiChatRequest request, Completion completion, ILogger logger)
    {
        GenerateFinal? final = null;
        FrontError? failure = null;
        var logprobs = new JsonArray();
        await stream.PumpAsync((frame, _) =>
        {
            if (frame.FrameCase == GenerateResponse.FrameOneofCase.Delta) AddLogprobs(logprobs, frame.Delta);
            else if (frame.FrameCase == GenerateResponse.FrameOneofCase.Final) final = frame.Final;
            return Task.CompletedTask;
        }, (error, _) =>
        {
            failure = error;
            return Task.CompletedTask;
        }, logger).ConfigureAwait(false);
        if (failure is { } f)
        {
            await Refuse(context, f).ConfigureAwait(false);
            return;
        }
        if (final is null) return;

        JsonObject body = completion.Head("chat.completion");
        body["choices"] = new JsonArray(new JsonObject
        {
            ["index"] = 0,
            ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = final.Text, ["refusal"] = null },
            ["logprobs"] = request.Logprobs ? new JsonObject { ["content"] = logprobs, ["refusal"] = null } : null,
            ["finish_reason"] = FinishReason(final.FinishReason),
        });
        body["usage"] = Usage(final.Usage);
        completion.AddExtension(body);
        await WriteJson(context, body).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>chat.completion.chunk</c> events: the role (with the extension field) first, a chunk per delta, one with the
    /// finish reason, with <c>include_usage</c> one with the usage and no choices, then <c>data: [DONE]</c>. A failure
    /// after the stream began is a <c>data: {"error": ...}</c> event, which OpenAI's SDKs raise as an error.
    /// </summary>
    private static async Task StreamChunks(HttpContext context, OpenGenerateCall stream, OpenAiChatRequest request, Completion completion, ILogger logger)
    {
        BackendCalls.BeginEventStream(context);
        JsonObject Chunk(JsonObject delta, string? finishReason, JsonArray? logprobs)
        {
            JsonObject chunk = completion.Head("chat.completion.chunk");
            chunk["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["delta"] = delta,
                ["logprobs"] = logprobs is null ? null : new JsonObject { ["content"] = logprobs, ["refusal"] = null },
                ["finish_reason"] = finishReason,
            });
            if (request.IncludeUsage) chunk["usage"] = null;
            return chunk;
        }

        bool started = false, failed = false;
        await stream.PumpAsync(async (frame, ct) =>
        {
            if (!started)
            {
                started = true;
                JsonObject first = Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null);
                completion.AddExtension(first);
                await BackendCalls.WriteEventAsync(context, null, first.ToJsonString(Json), ct).ConfigureAwait(false);
            }
            if (frame.FrameCase == GenerateResponse.FrameOneofCase.Delta)
            {
                JsonArray? logprobs = null;
                if (request.Logprobs && frame.Delta.Logprobs.Count > 0) AddLogprobs(logprobs = new JsonArray(), frame.Delta);
                // A delta with no text and nothing asked for besides (text held back at a possible stop string) says nothing.
                if (frame.Delta.Text.Length == 0 && logprobs is null) return;
                await BackendCalls.WriteEventAsync(context, null, Chunk(new JsonObject { ["content"] = frame.Delta.Text }, null, logprobs).ToJsonString(Json), ct)
                    .ConfigureAwait(false);
            }
            else if (frame.FrameCase == GenerateResponse.FrameOneofCase.Final)
            {
                GenerateFinal final = frame.Final;
                await BackendCalls.WriteEventAsync(context, null, Chunk(new JsonObject(), FinishReason(final.FinishReason), null).ToJsonString(Json), ct).ConfigureAwait(false);
                if (request.IncludeUsage)
                {
                    JsonObject usage = completion.Head("chat.completion.chunk");
                    usage["choices"] = new JsonArray();
                    usage["usage"] = Usage(final.Usage);
                    await BackendCalls.WriteEventAsync(context, null, usage.ToJsonString(Json), ct).ConfigureAwait(false);
                }
            }
        }, async (error, ct) =>
        {
            failed = true;
            await BackendCalls.WriteEventAsync(context, null, OpenAiErrors.Body(error), ct).ConfigureAwait(false);
        }, logger).ConfigureAwait(false);
        if (!failed && !context.RequestAborted.IsCancellationRequested)
        {
            try
            {
                await BackendCalls.WriteEventAsync(context, null, "[DONE]", context.RequestAborted).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
            {
                Log.SseCallerLeft(logger);
            }
        }
    }

    /// <summary>
    /// One entry per token. The contract streams token ids, not each token's own text, so a token is named as vLLM's
    /// <c>return_tokens_as_token_ids</c> names it: <c>token_id:1234</c>, with no bytes and no alternatives.
    /// </summary>
    private static void AddLogprobs(JsonArray into, TokenDelta delta)
    {
        for (int i = 0; i < delta.Logprobs.Count; i++)
        {
            string token = i < delta.TokenIds.Count ? string.Create(CultureInfo.InvariantCulture, $"token_id:{delta.TokenIds[i]}") : "";
            into.Add(new JsonObject { ["token"] = token, ["logprob"] = delta.Logprobs[i], ["bytes"] = null, ["top_logprobs"] = new JsonArray() });
        }
    }

    /// <summary>The model ending its answer and a stop string are both OpenAI's "stop"; only the token limit is "length".</summary>
    private static string FinishReason(LLark.Language.V1.FinishReason reason) =>
        reason == LLark.Language.V1.FinishReason.Length ? "length" : "stop";

    private static JsonObject Usage(Usage usage) => new()
    {
        ["prompt_tokens"] = usage.PromptTokens,
        ["completion_tokens"] = usage.GeneratedTokens,
        ["total_tokens"] = usage.PromptTokens + usage.GeneratedTokens,
        ["prompt_tokens_details"] = new JsonObject { ["audio_tokens"] = usage.AudioTokens, ["cached_tokens"] = usage.CachedTokens },
    };

    private static async Task WriteJson(HttpContext context, JsonObject body)
    {
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body.ToJsonString(Json), context.RequestAborted).ConfigureAwait(false);
    }
}
