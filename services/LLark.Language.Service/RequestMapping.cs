using LLark.Common.V1;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Multimodal;
using LLark.Language.V1;
using LLark.ServiceDefaults;
using EngineFinish = LLark.Language.Engine.Generation.FinishReason;
using WireFinish = LLark.Language.V1.FinishReason;
using ChatTurn = LLark.Language.Engine.Multimodal.ChatTurn;
using LLark.Common;

namespace LLark.Language.Service;

/// <summary>Proto to engine and back. Every refusal names the proto field.</summary>
internal static class RequestMapping
{
    public static IReadOnlyList<ChatTurn> ToTurns(GenerateRequest request)
    {
        if (request.Turns.Count == 0) throw new InvalidRequestException("turns", "the conversation has no turns");
        return [.. request.Turns.Select((t, i) => new ChatTurn(t.Human, i == request.Turns.Count - 1 && t.Assistant.Length == 0 ? null : t.Assistant))];
    }

    public static GenerationOptions ToGenerationOptions(GenerateRequest request, LanguageServiceOptions limits)
    {
        SamplingParameters sampling = request.Sampling ?? new SamplingParameters();
        StoppingParameters stopping = request.Stopping ?? new StoppingParameters();
        int maxNew = stopping.MaxNewTokens == 0 ? limits.DefaultMaxNewTokens : (int)Math.Min(stopping.MaxNewTokens, int.MaxValue);
        if (maxNew > limits.MaxNewTokensLimit)
            throw new InvalidRequestException("stopping.max_new_tokens", $"max_new_tokens {maxNew} exceeds this server's limit of {limits.MaxNewTokensLimit}");
        if (sampling.TopK > int.MaxValue) throw new InvalidRequestException("sampling.top_k", "top_k is too large");
        var options = new GenerationOptions
        {
            MaxNewTokens = maxNew,
            // ignore_eos runs to max_new_tokens: past EOS and past LLark's turn marker, the two ways an answer ends.
            StopStrings = stopping.IgnoreEos ? [.. stopping.Stop] : [LLarkPrompt.StopString, .. stopping.Stop],
            StopOnEos = !stopping.IgnoreEos,
            LogProbs = request.ReturnOptions?.Logprobs == true,
            Sampling = new SamplingOptions
            {
                Temperature = sampling.Temperature,
                TopP = sampling.TopP == 0 ? 1f : sampling.TopP,
                TopK = (int)sampling.TopK,
                RepetitionPenalty = sampling.RepetitionPenalty == 0 ? 1f : sampling.RepetitionPenalty,
                Seed = sampling.SeedChoiceCase == SamplingParameters.SeedChoiceOneofCase.Seed ? sampling.Seed : null,
            },
        };
        try
        {
            options.Validate();
        }
        catch (InvalidRequestException e)
        {
            string section = e.Field is "max_new_tokens" or "stop" ? "stopping" : "sampling";
            throw new InvalidRequestException($"{section}.{e.Field}", e.Message);
        }
        return options;
    }

    public static AudioFrames ToAudio(EmbeddingFrames frames)
    {
        try
        {
            float[] values = EmbeddingFramesCodec.Decode(frames);
            if (!(frames.Fps > 0) || !double.IsFinite(frames.Fps)) throw new InvalidRequestException("frames.fps", "fps must be a finite number > 0");
            AudioFrames.RequireValuesInRange(values, "frames.data");
            return new AudioFrames(values, (int)frames.Frames, (int)frames.Width, frames.Fps,
                frames.EncoderModelId.Length == 0 ? null : frames.EncoderModelId);
        }
        catch (FormatException e)
        {
            throw new InvalidRequestException("frames", e.Message);
        }
    }

    public static GenerateFinal ToFinal(GenerationResult result, int audioFrames, TimeSpan encoderTime) => new()
    {
        FinishReason = result.FinishReason switch
        {
            EngineFinish.Length => WireFinish.Length,
            EngineFinish.Stop => WireFinish.Stop,
            EngineFinish.Eos => WireFinish.Eos,
            _ => WireFinish.Cancelled,
        },
        Text = result.Text,
        Usage = new Usage
        {
            PromptTokens = (uint)result.PromptTokens, AudioTokens = (uint)audioFrames, GeneratedTokens = (uint)result.TokenIds.Count,
            CachedTokens = (uint)result.CachedPromptTokens,
        },
        Timings = new Timings
        {
            QueueWaitMs = result.QueueWait.TotalMilliseconds,
            TimeToFirstTokenMs = result.TimeToFirstToken.TotalMilliseconds,
            DecodeMs = result.DecodeTime.TotalMilliseconds,
            EncoderMs = encoderTime.TotalMilliseconds,
        },
    };
}
