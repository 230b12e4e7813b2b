using System.Diagnostics;
using System.Text;

namespace LLark.Language.Engine.Generation;

/// <summary>
/// The bookkeeping of one sequence being generated, apart from the model: choosing each token from its logits,
/// streaming text past stop strings, and deciding when and why it ends. A single-sequence loop and a batch
/// scheduler drive it the same way: <see cref="Accept"/> for every row of logits until <see cref="IsFinished"/>.
/// </summary>
public sealed class GenerationSequence
{
    private readonly GenerationOptions options;
    private readonly ITokenTextDecoder text;
    private readonly TokenSampler sampler;
    private readonly StopStringMatcher stop;
    private readonly HashSet<int> eos;
    private readonly HashSet<int>? seen;
    private readonly List<int> generated = [];
    private readonly List<float>? logProbs;
    private readonly StringBuilder streamed = new();
    private readonly Stopwatch clock = new();
    private TimeSpan firstToken;

    /// <param name="promptIds">Ids behind the prompt, for the repetition penalty (may be empty).</param>
    /// <param name="promptTokens">Positions the prompt takes (with audio frames, more than its ids).</param>
    /// <param name="eosTokenIds">The model's end-of-sequence ids.</param>
    /// <param name="text">Turns the generated ids into text.</param>
    /// <param name="options">Validated here.</param>
    public GenerationSequence(IReadOnlyList<int> promptIds, int promptTokens, IEnumerable<int> eosTokenIds,
        ITokenTextDecoder text, GenerationOptions options)
    {
        options.Validate();
        this.options = options;
        this.text = text;
        PromptTokens = promptTokens;
        sampler = new TokenSampler(options.Sampling);
        stop = new StopStringMatcher(options.StopStrings);
        eos = options.StopOnEos ? [.. eosTokenIds] : [];
        seen = options.Sampling.RepetitionPenalty != 1f ? [.. promptIds] : null;
        logProbs = options.LogProbs ? [] : null;
    }

    public int PromptTokens { get; }

    /// <summary>The last token chosen: the one to feed to the model next.</summary>
    public int LastToken => generated[^1];

    public int GeneratedTokens => generated.Count;

    public bool IsFinished => Result is not null;

    public GenerationResult? Result { get; private set; }

    /// <summary>From <see cref="Start"/> to the first token (zero before it).</summary>
    public TimeSpan TimeToFirstToken => firstToken;

    /// <summary>Time the sequence waited for a batch slot, reported in its result.</summary>
    public TimeSpan QueueWait { get; set; }

    /// <summary>Prompt positions taken from the prefix cache, reported in its result.</summary>
    public int CachedPromptTokens { get; set; }

    /// <summary>Every token chosen so far.</summary>
    public IReadOnlyList<int> Generated => generated;

    /// <summary>Starts the clocks; call as the prompt's forward begins.</summary>
    public void Start() => clock.Start();

    /// <summary>
    /// Chooses the next token from <paramref name="logits"/> and returns its update; when the sequence ends with it,
    /// the returned update carries the result. <paramref name="roomLeft"/> is false when the cache cannot take the
    /// token back in (the context is full).
    /// </summary>
    public GenerationUpdate Accept(ReadOnlySpan<float> logits, bool roomLeft, CancellationToken cancellationToken)
    {
        if (IsFinished) throw new InvalidOperationException("the sequence has already finished");
        int next = sampler.Next(logits, seen);
        float? logProb = logProbs is null ? null : TokenSampler.LogProb(logits, next);
        if (logProb is { } lp) logProbs!.Add(lp);
        generated.Add(next);
        seen?.Add(next);
        if (generated.Count == 1) firstToken = clock.Elapsed;

        string delta = "";
        FinishReason? finish = null;
        if (eos.Contains(next)) finish = FinishReason.Eos;
        else
        {
            delta = stop.Push(text.Push(next));
            if (stop.Stopped) finish = FinishReason.Stop;
            else if (generated.Count >= options.MaxNewTokens || !roomLeft) finish = FinishReason.Length;
            else if (cancellationToken.IsCancellationRequested) finish = FinishReason.Cancelled;
        }
        streamed.Append(delta);
        if (finish is null) return new GenerationUpdate(next, delta, logProb, null);
        // The final update also carries what was held back for a stop string that never came.
        return new GenerationUpdate(next, delta + Complete(finish.Value), logProb, Result);
    }

    /// <summary>Ends the sequence from outside (cancelled before or between steps) and returns the final update.</summary>
    public GenerationUpdate Finish(FinishReason reason)
    {
        if (IsFinished) throw new InvalidOperationException("the sequence has already finished");
        return new GenerationUpdate(null, Complete(reason), null, Result);
    }

    private string Complete(FinishReason reason)
    {
        string tail = stop.Stopped ? "" : stop.Push(text.Flush()) + stop.Flush();
        streamed.Append(tail);
        TimeSpan total = clock.Elapsed;
        Result = new GenerationResult(generated, streamed.ToString(), reason, PromptTokens, logProbs,
            generated.Count > 0 ? firstToken : total, generated.Count > 0 ? total - firstToken : TimeSpan.Zero)
        {
            QueueWait = QueueWait,
            CachedPromptTokens = CachedPromptTokens,
        };
        return tail;
    }
}
