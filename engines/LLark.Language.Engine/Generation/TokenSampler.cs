using System.Runtime.CompilerServices;
using System.Numerics.Tensors;

namespace LLark.Language.Engine.Generation;

/// <summary>
/// Picks the next token from a row of logits on the CPU in managed code: a 32k-entry row is cheaper to
/// process here than through a dozen tensor calls, and the result is reproducible from the seed alone.
/// Whole-row passes (max, scale, exp, sums) are SIMD (<see cref="TensorPrimitives"/>); only the few candidates a
/// top-k or top-p cut can keep are sorted.
/// </summary>
public sealed class TokenSampler
{
    /// <summary>Probabilities are summed in blocks of this many ids, so a draw walks one block instead of the row.</summary>
    private const int DrawBlock = 512;

    private readonly SamplingOptions options;
    private readonly Random random;
    private float[] scratch = [];
    private float[] weights = [];
    private int[] order = [];

    public TokenSampler(SamplingOptions options)
    {
        options.Validate();
        this.options = options;
        // Random(int) is a fixed algorithm, so a seed gives the same draws on every run and machine.
        random = options.Seed is { } seed ? new Random(unchecked((int)(seed ^ (seed >> 32)))) : new Random();
    }

    /// <summary>Chooses a token. <paramref name="seen"/> holds the ids the repetition penalty applies to.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Next(ReadOnlySpan<float> logits, IReadOnlySet<int>? seen)
    {
        if (scratch.Length != logits.Length) scratch = new float[logits.Length];
        Span<float> l = scratch;
        logits.CopyTo(l);
        // A NaN logit (a model pushed out of float range) gets no weight: every pass below would otherwise take it as
        // the largest or spread NaN through the weights. Cheap beside the forward pass that made the row.
        if (float.IsNaN(l[TensorPrimitives.IndexOfMax(l)]))
        {
            for (int i = 0; i < l.Length; i++)
            {
                if (float.IsNaN(l[i])) l[i] = float.NegativeInfinity;
            }
        }
        if (options.RepetitionPenalty != 1f && seen is not null)
        {
            foreach (int id in seen)
            {
                if ((uint)id >= (uint)l.Length) continue;
                l[id] = l[id] > 0 ? l[id] / options.RepetitionPenalty : l[id] * options.RepetitionPenalty;
            }
        }
        if (options.IsGreedy) return ArgMax(l);
        if (options.TopK == 0 && options.TopP >= 1f) return SampleAll(l);
        return SampleFiltered(l);
    }

    /// <summary>
    /// Top-k and/or top-p. Every kept token has a higher (temperature-scaled) logit than every cut one, so the kept set is
    /// a prefix of the row sorted by logit; it is found among the ids within a margin of the best logit, the margin
    /// doubling until the prefix is sure to lie inside (k ids for top-k, probability mass top_p for top-p). Only those
    /// candidates are sorted (highest logit first, ties by lower id), so the tokens are those a sort of the whole row gives.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private int SampleFiltered(Span<float> l)
    {
        int n = l.Length;
        TensorPrimitives.Multiply(l, 1f / options.Temperature, l);
        float max = l[ArgMax(l)];
        int keep = options.TopK > 0 ? Math.Min(options.TopK, n) : n;
        bool nucleus = options.TopP < 1f;

        // Weights relative to the best token; their total over the row is what top-p measures against without top-k.
        if (weights.Length != n) weights = new float[n];
        Span<float> w = weights;
        TensorPrimitives.Subtract(l, max, w);
        TensorPrimitives.Exp(w, w);
        double rowTotal = TensorPrimitives.Sum<float>(w);

        if (order.Length != n) order = new int[n];
        int candidates = 0;
        for (float margin = 8f; ; margin *= 2f)
        {
            float floor = max - margin;
            candidates = 0;
            double mass = 0;
            for (int i = 0; i < n; i++)
            {
                if (!(l[i] >= floor)) continue;
                order[candidates++] = i;
                mass += w[i];
            }
            bool enough = options.TopK > 0 ? candidates >= keep : !nucleus || mass >= options.TopP * rowTotal;
            if (enough || candidates == n || float.IsInfinity(floor) || margin > 1e30f) break;
        }
        float[] keys = scratch;
        Array.Sort(order, 0, candidates, Comparer<int>.Create((a, b) => keys[b].CompareTo(keys[a]) is var c && c != 0 ? c : a.CompareTo(b)));
        keep = Math.Min(keep, candidates);

        double best = l[order[0]];
        double total = 0;
        var probs = new double[keep];
        for (int i = 0; i < keep; i++) { probs[i] = Math.Exp(l[order[i]] - best); total += probs[i]; }
        if (nucleus)
        {
            // Without top-k the nucleus is measured against the whole row; with it, against the k kept.
            double against = options.TopK > 0 ? total : rowTotal;
            double cumulative = 0;
            int cut = keep;
            for (int i = 0; i < keep; i++)
            {
                cumulative += probs[i] / against;
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
    /// Plain temperature sampling: no candidate is cut, so the row is never sorted. Weights exp((l - max) / T) are made in
    /// place, summed in blocks, and the draw walks the block its point falls in. Deterministic for a seed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private int SampleAll(Span<float> l)
    {
        float max = l[ArgMax(l)];
        TensorPrimitives.Subtract(l, max, l);
        TensorPrimitives.Multiply(l, 1f / options.Temperature, l);
        TensorPrimitives.Exp(l, l);
        return Draw(l, random.NextDouble());
    }

    /// <summary>The id at fraction <paramref name="u"/> of the cumulative weight of <paramref name="w"/> (non-negative weights).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static int Draw(ReadOnlySpan<float> w, double u)
    {
        int blocks = (w.Length + DrawBlock - 1) / DrawBlock;
        Span<double> sums = blocks <= 256 ? stackalloc double[blocks] : new double[blocks];
        double total = 0;
        for (int b = 0; b < blocks; b++)
        {
            int start = b * DrawBlock;
            sums[b] = TensorPrimitives.Sum(w.Slice(start, Math.Min(DrawBlock, w.Length - start)));
            total += sums[b];
        }
        double r = u * total;
        for (int b = 0; b < blocks; b++)
        {
            if (r >= sums[b])
            {
                r -= sums[b];
                continue;
            }
            int start = b * DrawBlock, end = Math.Min(w.Length, start + DrawBlock), last = -1;
            for (int i = start; i < end; i++)
            {
                if (w[i] <= 0) continue;
                last = i;
                r -= w[i];
                if (r < 0) return i;
            }
            // The block's SIMD sum and this walk's sum differ in their last bits; the point fell in the gap.
            if (last >= 0) return last;
        }
        // Rounding carried the point past the end (or the weights are not numbers): the most likely token.
        return ArgMax(w);
    }

    /// <summary>The index of the largest logit, NaNs passed over; the first one on ties; 0 when every logit is NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int ArgMax(ReadOnlySpan<float> l)
    {
        // SIMD for the usual row; it answers the first NaN when there is one, so only then walk the row.
        int top = TensorPrimitives.IndexOfMax(l);
        if (!float.IsNaN(l[top])) return top;
        top = -1;
        for (int i = 0; i < l.Length; i++)
        {
            if (!float.IsNaN(l[i]) && (top < 0 || l[i] > l[top])) top = i;
        }
        return Math.Max(top, 0);
    }

    /// <summary>log softmax(logits)[id]: the row's exponentials summed with SIMD in single precision, the log in double.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float LogProb(ReadOnlySpan<float> logits, int id)
    {
        float max = logits[ArgMax(logits)];
        float[] buffer = System.Buffers.ArrayPool<float>.Shared.Rent(logits.Length);
        try
        {
            Span<float> e = buffer.AsSpan(0, logits.Length);
            TensorPrimitives.Subtract(logits, max, e);
            TensorPrimitives.Exp(e, e);
            double sum = TensorPrimitives.Sum<float>(e);
            return (float)(logits[id] - max - Math.Log(sum));
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(buffer);
        }
    }
}
