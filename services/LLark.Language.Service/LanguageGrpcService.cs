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

/// <summary>Validates, maps the request to the engine, streams the scheduler's updates, and maps errors to real statuses.</summary>
public sealed class LanguageGrpcService(ModelHost host, EncoderClient encoder, IOptions<LanguageServiceOptions> options,
    ILogger<LanguageGrpcService> logger) : LanguageService.LanguageServiceBase
{
    public override async Task Generate(GenerateRequest request, IServerStreamWriter<GenerateResponse> responseStream, ServerCallContext context)
    {
        try
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
            LLarkPromptInput prompt = model.Model.BuildPrompt(turns, audio);
            IAsyncEnumerable<GenerationUpdate> updates = model.Scheduler.Submit(prompt.Embeddings, prompt.Ids,
                model.Model.Tokenizer.CreateDetokenizer(atStartOfText: false), generation, context.CancellationToken);
            await Stream(updates, request.ReturnOptions, prompt.AudioFrames, encoderTime, responseStream, context).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            // The client went away or its deadline passed; the scheduler has freed the slot.
        }
        catch (Exception e) when (ToStatus(e) is { } status)
        {
            Log.GenerateRefused(logger, status.Status.StatusCode, status.Status.Detail);
            throw status;
        }
        catch (Exception e)
        {
            Log.GenerateFailed(logger, e);
            throw new RpcException(new Status(StatusCode.Internal, "generation failed on the server; see its logs"));
        }
    }

    private async Task Stream(IAsyncEnumerable<GenerationUpdate> updates, ReturnOptions? extras, int audioFrames, TimeSpan encoderTime,
        IServerStreamWriter<GenerateResponse> responseStream, ServerCallContext context)
    {
        bool ids = extras?.TokenIds == true, logProbs = extras?.Logprobs == true;
        await foreach (GenerationUpdate update in updates.ConfigureAwait(false))
        {
            if (update.TextDelta.Length > 0 || (update.TokenId is not null && (ids || logProbs)))
            {
                var delta = new TokenDelta { Text = update.TextDelta };
                if (ids && update.TokenId is { } id) delta.TokenIds.Add((uint)id);
                if (logProbs && update.LogProb is { } lp) delta.Logprobs.Add(lp);
                await responseStream.WriteAsync(new GenerateResponse { Delta = delta }, context.CancellationToken).ConfigureAwait(false);
            }
            if (update.Result is not { } result) continue;
            await responseStream.WriteAsync(new GenerateResponse { Final = RequestMapping.ToFinal(result, audioFrames, encoderTime) },
                context.CancellationToken).ConfigureAwait(false);
            int generated = result.TokenIds.Count;
            double queueMs = result.QueueWait.TotalMilliseconds, ttftMs = result.TimeToFirstToken.TotalMilliseconds, decodeMs = result.DecodeTime.TotalMilliseconds;
            Log.GenerateFinished(logger, result.FinishReason, result.PromptTokens, audioFrames, generated, queueMs, ttftMs, decodeMs);
        }
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
            AudioEncoderModelId = model.Model.AudioEncoder ?? "",
            MaxBatchSize = (uint)model.Scheduler.MaxBatchSize,
            MaxNewTokensLimit = (uint)options.Value.MaxNewTokensLimit,
        });
    }

    /// <summary>The status for what the caller got wrong or what is temporarily unavailable; null for a server bug.</summary>
    private static RpcException? ToStatus(Exception e) => e switch
    {
        RpcException rpc => rpc,
        InvalidRequestException invalid => new RpcException(new Status(StatusCode.InvalidArgument, $"{invalid.Field}: {invalid.Message}")),
        ContextLengthException context => new RpcException(new Status(StatusCode.InvalidArgument, $"turns: the prompt is too long: {context.Message}")),
        QueueFullException full => new RpcException(new Status(StatusCode.ResourceExhausted, full.Message),
            new Metadata { { "grpc-retry-pushback-ms", ((long)full.RetryAfter.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture) } }),
        _ => null,
    };
}
