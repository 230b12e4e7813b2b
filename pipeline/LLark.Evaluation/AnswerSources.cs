using System.Text.Json.Serialization;
using LLark.Encoder.Engine;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Multimodal;

namespace LLark.Evaluation;

/// <summary>One generated answer and what it cost.</summary>
public sealed record ModelAnswer(string Text, string FinishReason, int PromptTokens, int GeneratedTokens, double Milliseconds);

/// <summary>A clip embedded once, to be asked any number of questions.</summary>
public interface IEmbeddedClip
{
    /// <summary>Audio frames the model sees.</summary>
    int Frames { get; }

    Task<ModelAnswer> AskAsync(string question, CancellationToken ct);
}

/// <summary>
/// Where the evaluation's answers come from: the model in process, or the services behind the gateway. Embedding a
/// clip that cannot be used throws <see cref="LLark.Encoder.Engine.Audio.AudioDecodeException"/>,
/// <see cref="FileNotFoundException"/> or <see cref="UnusableClipException"/>; the runner reports the clip and skips it.
/// </summary>
public interface IAnswerSource
{
    /// <summary>Names the model (answers of another model in a resumed file are not reused).</summary>
    string Name { get; }

    Task<IEmbeddedClip> EmbedAsync(string audioPath, CancellationToken ct);
}

/// <summary>Answers from a <see cref="LocalLLark"/> in this process.</summary>
public sealed class LocalAnswerSource(LocalLLark llark, int maxNewTokens) : IAnswerSource
{
    public string Name => llark.Name;

    public Task<IEmbeddedClip> EmbedAsync(string audioPath, CancellationToken ct) =>
        Task.FromResult<IEmbeddedClip>(new Clip(llark, llark.EmbedFile(audioPath, ct), maxNewTokens));

    private sealed class Clip(LocalLLark llark, AudioFrames frames, int maxNewTokens) : IEmbeddedClip
    {
        public int Frames => frames.Frames;

        public Task<ModelAnswer> AskAsync(string question, CancellationToken ct)
        {
            (GenerationResult r, TimeSpan elapsed) = llark.AskToEnd(frames, question, maxNewTokens, ct);
            return Task.FromResult(new ModelAnswer(r.Text, FinishReasonName(r.FinishReason), r.PromptTokens, r.TokenIds.Count, elapsed.TotalMilliseconds));
        }
    }

    public static string FinishReasonName(FinishReason reason) => reason.ToString().ToLowerInvariant();
}

/// <summary>A line of <c>eval.jsonl</c>: one answer, or one clip's baseline estimates. Appended as they are made.</summary>
public sealed record EvalLine
{
    /// <summary>"answer" or "baseline".</summary>
    [JsonPropertyName("type")] public string Type { get; init; } = "";

    [JsonPropertyName("clip")] public string Clip { get; init; } = "";

    /// <summary>The answering model (<see cref="IAnswerSource.Name"/>); baseline lines have none.</summary>
    [JsonPropertyName("model")] public string? Model { get; init; }

    [JsonPropertyName("task")] public string? Task { get; init; }

    [JsonPropertyName("question")] public string? Question { get; init; }

    [JsonPropertyName("text")] public string? Text { get; init; }

    [JsonPropertyName("finish_reason")] public string? FinishReason { get; init; }

    [JsonPropertyName("prompt_tokens")] public int? PromptTokens { get; init; }

    [JsonPropertyName("generated_tokens")] public int? GeneratedTokens { get; init; }

    [JsonPropertyName("ms")] public double? Milliseconds { get; init; }

    [JsonPropertyName("tempo_bpm")] public double? TempoBpm { get; init; }

    [JsonPropertyName("key")] public string? Key { get; init; }

    [JsonPropertyName("key_correlation")] public double? KeyCorrelation { get; init; }
}
