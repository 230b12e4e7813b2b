using LLark.Common;

namespace LLark.Language.Engine.Generation;

/// <summary>How the next token is chosen. The defaults give greedy decoding.</summary>
public sealed record SamplingOptions
{
    /// <summary>Softmax temperature; 0 (default) picks the most likely token (greedy).</summary>
    public float Temperature { get; init; }

    /// <summary>Keep only the K most likely tokens before sampling; 0 (default) keeps all.</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of tokens whose probability reaches P (nucleus); 1 (default) keeps all.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Hugging Face-style penalty on every token already in the prompt or output; 1 (default) is off.</summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>Random seed; the same seed, prompt and settings give the same output. Null draws one.</summary>
    public ulong? Seed { get; init; }

    public bool IsGreedy => Temperature == 0f;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0f) || float.IsInfinity(Temperature))
            throw new InvalidRequestException("temperature", $"temperature must be >= 0 and finite, got {Temperature}");
        if (TopK < 0) throw new InvalidRequestException("top_k", $"top_k must be >= 0, got {TopK}");
        if (!(TopP > 0f && TopP <= 1f)) throw new InvalidRequestException("top_p", $"top_p must be in (0, 1], got {TopP}");
        if (!(RepetitionPenalty > 0f) || float.IsInfinity(RepetitionPenalty))
            throw new InvalidRequestException("repetition_penalty", $"repetition_penalty must be > 0 and finite, got {RepetitionPenalty}");
    }
}

/// <summary>When to stop and what to report.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate; LLark's default is 512.</summary>
    public int MaxNewTokens { get; init; } = 512;

    public SamplingOptions Sampling { get; init; } = new();

    /// <summary>Generation ends as soon as the text contains one of these; the text stops before it (LLark: "###").</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>End on the model's end-of-sequence token(s) (default true).</summary>
    public bool StopOnEos { get; init; } = true;

    /// <summary>Report each generated token's log-probability under the model (before sampling settings).</summary>
    public bool LogProbs { get; init; }

    public void Validate()
    {
        if (MaxNewTokens < 1) throw new InvalidRequestException("max_new_tokens", $"max_new_tokens must be >= 1, got {MaxNewTokens}");
        if (StopStrings.Any(string.IsNullOrEmpty)) throw new InvalidRequestException("stop", "stop strings must not be empty");
        Sampling.Validate();
    }
}

/// <summary>Why generation ended.</summary>
public enum FinishReason
{
    /// <summary>max_new_tokens reached, or the context is full.</summary>
    Length,

    /// <summary>A stop string appeared.</summary>
    Stop,

    /// <summary>The model produced an end-of-sequence token.</summary>
    Eos,

    /// <summary>The caller cancelled.</summary>
    Cancelled,
}

/// <summary>
/// One step of a generation stream. Token steps carry the id and the text it released (possibly empty while
/// a multi-byte character or a possible stop string is held back); the last update carries <see cref="Result"/>.
/// </summary>
public sealed record GenerationUpdate(int? TokenId, string TextDelta, float? LogProb, GenerationResult? Result);

/// <summary>Everything a finished generation produced.</summary>
public sealed record GenerationResult(
    IReadOnlyList<int> TokenIds,
    string Text,
    FinishReason FinishReason,
    int PromptTokens,
    IReadOnlyList<float>? LogProbs,
    TimeSpan TimeToFirstToken,
    TimeSpan DecodeTime)
{
    /// <summary>Time from submission until the sequence joined a running batch (zero outside a scheduler).</summary>
    public TimeSpan QueueWait { get; init; }

    /// <summary>Prompt positions whose keys and values came from the prefix cache instead of the prefill.</summary>
    public int CachedPromptTokens { get; init; }
}
