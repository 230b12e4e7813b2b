namespace LLark.Language.Engine.Generation;

/// <summary>
/// Picks the next token from a row of logits on the CPU in managed code: a 32k-entry row is cheaper to
/// process here than through a dozen tensor calls, and the result is reproducible from the seed alone.
/// </summary>
public sealed class TokenSampler
{
    private readonly SamplingOptions options;
    private readonly Random random;
    private float[] scratch = [];
    private int[] order = [];

    public TokenSampler(SamplingOptions options)
    {
        options.Validate();
        this.options = options;
        // Random(int) is a fixed algorithm, so a seed gives the same draws on every run and machine.
        random = options.Seed is { } seed ? new Random(unchecked((int)(seed ^ (seed >> 32)))) : new Random();
    }

    /// <summary>Chooses a token. <paramref name="seen"/> holds the ids the repetition penalty applies to.</summary>
    public int Next(ReadOnlySpan<float> logits, IReadOnlySet<int>? seen)
    {
        if (scratch.Length != logits.Length) scratch = new float[logits.Length];
        Span<float> l = scratch;
        logits.CopyTo(l);
        if (options.RepetitionPenalty != 1f && seen is not null)
        {
            foreach (int id in seen)
            {
                if ((uint)id >= (uint)l.Length) continue;
                l[id] = l[id] > 0 ? l[id] / options.RepetitionPenalty : l[id] * options.RepetitionPenalty;
            }
        }
        if (options.IsGreedy) return ArgMax(l);
        return SampleFiltered(l);
    }

    private int SampleFiltered(Span<float> l)
    {
        int n = l.Length;
        if (options.TopK == 0 && options.TopP >= 1f) return SampleAll(l);
        if (order.Length != n) order = new int[n];
        float inv = 1f / options.Temperature;
        for (int i = 0; i < n; i++) { order[i] = i; l[i] *= inv; }

        // Candidates sorted by logit, highest first; ties keep the lower id first for determinism.
        float[] keys = scratch;
        Array.Sort(order, (a, b) => keys[b].CompareTo(keys[a]) is var c && c != 0 ? c : a.CompareTo(b));
        int keep = options.TopK > 0 ? Math.Min(options.TopK, n) : n;

        double max = l[order[0]];
        double total = 0;
        var probs = new double[keep];
        for (int i = 0; i < keep; i++) { probs[i] = Math.Exp(l[order[i]] - max); total += probs[i]; }
        if (options.TopP < 1f)
        {
            double cumulative = 0;
            int cut = keep;
            for (int i = 0; i < keep; i++)
            {
                cumulative += probs[i] / total;
                if (cumulative >= options.TopP) { cut = i + 1; break; }
            }
            keep = cut;
            total = 0;
            for (int i = 0; i < keep; i++) total += probs[i];
        }
        double r = random.NextDouble() * total;
        for (int i = 0; i < keep; i++)
        {
            r -= probs[i];
            if (r < 0) return order[i];
        }
        return order[keep - 1];
    }

    /// <summary>
    /// Plain temperature sampling: no candidate is cut, so the row is walked in id order instead of being sorted (the
    /// sort of a 32k row cost milliseconds a token). Deterministic for a seed, like the filtered path.
    /// </summary>
    private int SampleAll(Span<float> l)
    {
        float inv = 1f / options.Temperature;
        float max = l[ArgMax(l)];
        double total = 0;
        for (int i = 0; i < l.Length; i++)
        {
            double p = Math.Exp((l[i] - max) * inv);
            l[i] = (float)p;
            total += p;
        }
        double r = random.NextDouble() * total;
        for (int i = 0; i < l.Length; i++)
        {
            r -= l[i];
            if (r < 0) return i;
        }
        return ArgMax(l);
    }

    public static int ArgMax(ReadOnlySpan<float> l)
    {
        int best = 0;
        float bestValue = l[0];
        for (int i = 1; i < l.Length; i++)
        {
            if (l[i] > bestValue) { bestValue = l[i]; best = i; }
        }
        return best;
    }

    /// <summary>log softmax(logits)[id], in double precision.</summary>
    public static float LogProb(ReadOnlySpan<float> logits, int id)
    {
        float max = logits[ArgMax(logits)];
        double sum = 0;
        foreach (float x in logits) sum += Math.Exp(x - max);
        return (float)(logits[id] - max - Math.Log(sum));
    }
}
