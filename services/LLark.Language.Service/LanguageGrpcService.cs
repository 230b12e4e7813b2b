using Grpc.Core;
using LLark.Common.V1;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Multimodal;
using LLark.Language.Engine.Serving;
using LLark.Language.V1;
using Microsoft.Extensions.Options;
using ChatTurn = LLark.Language.Engine.Multimodal.ChatTurn;

namespace LLark.Language.Service;

/// <summary>Validates, maps the request to the engine, and streams the scheduler's updates.</summary>
public sealed class LanguageGrpcService(ModelHost host, EncoderClient encoder, IOptions<LanguageServiceOptions> options,
    ILogger<LanguageGrpcService> logger) : LanguageService.LanguageServiceBase
{
    public override async Task Generate(GenerateRequest request, IServerStreamWriter<GenerateResponse> responseStream, ServerCallContext context)
    {
        ModelHost.Loaded model = host.Ready();
        GenerationOptions generation = RequestMapping.ToGenerationOptions(request, options.Value);
        IReadOnlyList<ChatTurn> turns = RequestMapping.ToTurns(request);
        (AudioFrames? audio, TimeSpan encoderTime) = request.AudioCase switch
        {
            GenerateRequest.AudioOneofCase.EmbeddingId => await encoder.FetchAsync(request.EmbeddingId, context).ConfigureAwait(false),
            GenerateRequest.AudioOneofCase.AudioBytes => await encoder.EmbedAsync(request.AudioBytes, context).ConfigureAwait(false),
            GenerateRequest.AudioOneofCase.Frames => (RequestMapping.ToAudio(request.Frames), TimeSpan.Zero),
            _ => ((AudioFrames?)null, TimeSpan.Zero),
        };
        LLarkPromptInput prompt;
        using (TorchThreadScope.Use(options.Value.TorchThreads)) prompt = model.Model.BuildPrompt(turns, audio);
        GenerationFeed updates = model.Scheduler.Submit(prompt.Embeddings, prompt.Ids,
            model.Model.Tokenizer.CreateDetokenizer(atStartOfText: false), generation, model.PrefixCache is null ? null : prompt.Key,
            context.CancellationToken);
        await Stream(updates, request.ReturnOptions, prompt.AudioFrames, encoderTime, responseStream, context).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends the updates as they come. A delta covers every token made since the last write: one token while the client
    /// keeps up, several when writes fall behind the decode steps (a slow network, a busy machine), so a lagging stream
    /// costs fewer messages instead of a growing backlog.
    /// </summary>
    private async Task Stream(GenerationFeed updates, ReturnOptions? extras, int audioFrames, TimeSpan encoderTime,
        IServerStreamWriter<GenerateResponse> responseStream, ServerCallContext context)
    {
        bool ids = extras?.TokenIds == true, logProbs = extras?.Logprobs == true;
        var text = new System.Text.StringBuilder();
        await foreach (GenerationUpdate first in updates.ConfigureAwait(false))
        {
            TokenDelta? delta = Merge(first, updates, ids, logProbs, text, out GenerationUpdate update);
            if (delta is not null) await responseStream.WriteAsync(new GenerateResponse { Delta = delta }, context.CancellationToken).ConfigureAwait(false);
            if (update.Result is not { } result) continue;
            await responseStream.WriteAsync(new GenerateResponse { Final = RequestMapping.ToFinal(result, audioFrames, encoderTime) },
                context.CancellationToken).ConfigureAwait(false);
            int generated = result.TokenIds.Count;
            double queueMs = result.QueueWait.TotalMilliseconds, ttftMs = result.TimeToFirstToken.TotalMilliseconds, decodeMs = result.DecodeTime.TotalMilliseconds;
            Log.GenerateFinished(logger, result.FinishReason, result.PromptTokens, result.CachedPromptTokens, audioFrames, generated, queueMs, ttftMs, decodeMs);
        }
    }

    /// <summary>
    /// One delta for <paramref name="first"/> and every update already waiting after it, up to and including the one that
    /// ends the generation (returned in <paramref name="last"/>); null when they carry nothing to send.
    /// </summary>
    internal static TokenDelta? Merge(GenerationUpdate first, GenerationFeed waiting, bool ids, bool logProbs, System.Text.StringBuilder text,
        out GenerationUpdate last)
    {
        var delta = new TokenDelta();
        bool any = false;
        text.Clear();
        last = first;
        while (true)
        {
            text.Append(last.TextDelta);
            if (last.TokenId is { } id && (ids || logProbs))
            {
                any = true;
                if (ids) delta.TokenIds.Add((uint)id);
                if (logProbs && last.LogProb is { } lp) delta.Logprobs.Add(lp);
            }
            if (last.Result is not null || !waiting.TryRead(out GenerationUpdate? next)) break;
            last = next;
        }
        if (text.Length == 0 && !any) return null;
        delta.Text = text.ToString();
        return delta;
    }

    public override Task<ModelInfo> GetModelInfo(GetModelInfoRequest request, ServerCallContext context)
    {
        ModelHost.Loaded model = host.Ready();
        LlamaForCausalLM llama = model.Model.Llama;
        return Task.FromResult(new ModelInfo
        {
            ModelId = model.ModelId,
            AudioFps = model.Model.AudioFps,
            AudioEmbeddingWidth = (uint)model.Model.AudioWidth,
            ContextLength = (uint)model.Scheduler.ContextLength,
            Dtype = llama.DType.ToString().ToLowerInvariant(),
            Device = llama.Device.ToString(),
            Weights = llama.WeightFormat.Name(),
            AudioEncoderModelId = model.Model.AudioEncoder ?? "",
            MaxBatchSize = (uint)model.Scheduler.MaxBatchSize,
            MaxNewTokensLimit = (uint)options.Value.MaxNewTokensLimit,
        });
    }
}
