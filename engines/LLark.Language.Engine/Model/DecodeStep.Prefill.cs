using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Language.Engine.Model;

/// <summary>
/// The prefill of one sequence (a prompt of t rows after the cache's current positions) with the decode step's own
/// kernels: the rows go through the layers together, <see cref="PrefillChunk"/> at a time, so every weight row is read
/// once per chunk and multiplied with all of its rows in the 4 x 2 tiles the batched step uses.
/// </summary>
/// <remarks>
/// libtorch on one thread (the scheduler prefills with one, see <c>SchedulerOptions.PrefillThreads</c>) spends a small
/// model's prefill mostly in per-op overhead: a forward is some 40 tensor calls a layer. Row i
/// attends causally over the cache and rows 0..i, each head as <see cref="AttendHead"/> does it for a decode step; the
/// arithmetic is the libtorch prefill's in another summation order (float32 throughout).
/// </remarks>
internal sealed unsafe partial class DecodeStep
{
    /// <summary>Prompt rows per pass through the layers (bounds the scratch: rows × the widest activation).</summary>
    internal const int PrefillChunk = 64;

    [ThreadStatic] private static float[]? prefillScratch;

    /// <summary>
    /// Runs the embedding rows <paramref name="rows"/> [t, hidden] at the cache's next positions, appends their keys and
    /// values, advances the cache by t and writes float32 logits: [t, vocab], or [1, vocab] for the last row only when
    /// <paramref name="lastOnly"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Prefill(float* rows, int t, KvCache cache, float* logits, bool lastOnly)
    {
        if (cache.BatchSize != 1) throw new ArgumentException("the prefill runs one sequence");
        ArgumentOutOfRangeException.ThrowIfLessThan(t, 1);
        CheckCache(cache.Layer(0).Keys);
        cache.EnsureRoom(t);
        for (int done = 0; done < t; done += PrefillChunk)
        {
            int m = Math.Min(PrefillChunk, t - done);
            float* output = lastOnly ? (done + m == t ? logits : null) : logits + (long)done * vocab;
            PrefillChunkRows(rows + (long)done * dim, m, cache, output, lastOnly);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PrefillChunkRows(float* rows, int m, KvCache cache, float* logits, bool lastOnly)
    {
        int start = cache.Length, capacity = cache.Capacity, steps = start + m;
        int qDim = heads * headDim, kvDim = kvHeads * headDim, qkvDim = qDim + 2 * kvDim;
        int parts = SpinWorkers.Shared.Parallelism * SpinWorkers.PartsPerThread;
        int xAt = 0, xbAt = Align(xAt + m * dim), qkvAt = Align(xbAt + m * dim), attnAt = Align(qkvAt + m * qkvDim);
        int hbAt = Align(attnAt + m * qDim), scoresAt = Align(hbAt + 3 * m * ffn);
        long total = scoresAt + (long)parts * steps;
        if (total > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(cache), "the prefill's scratch would not fit in one array");
        if (prefillScratch is null || prefillScratch.Length < total)
            prefillScratch = GC.AllocateUninitializedArray<float>((int)Math.Min(int.MaxValue, Math.Max(total, 2L * (prefillScratch?.Length ?? 0))), pinned: true);
        float* s = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(prefillScratch));
        float* x = s + xAt, xb = s + xbAt, qkv = s + qkvAt, attn = s + attnAt, hb = s + hbAt, scores = s + scoresAt;

        new Span<float>(rows, m * dim).CopyTo(new Span<float>(x, m * dim));
        RunLayers(new PromptRows(cache, m, start, steps), x, xb, qkv, attn, hb, scores, m);
        cache.Advance(m);
        if (logits is null) return;
        int first = lastOnly ? m - 1 : 0, count = m - first;
        for (int i = first; i < m; i++) RmsNorm(x + (long)i * dim, finalNorm, xb + (long)(i - first) * dim, dim, eps);
        MatMul(head, xb, logits, count, vocab, dim, accumulate: false);
    }

    /// <summary>Rows of one prompt at positions start, start + 1, ..., each attending causally.</summary>
    private readonly struct PromptRows(KvCache cache, int m, int start, int steps) : IRowAttention
    {
        bool IRowAttention.MatrixVector => false;

        public void Run(DecodeStep step, int layer, float* qkv, float* attn, float* scores)
        {
            int capacity = cache.Capacity, qkvDim = step.QkvDim;
            (Tensor keys, Tensor values) = cache.Layer(layer);
            float* kc = (float*)NativeTensor.DataPointer(keys), vc = (float*)NativeTensor.DataPointer(values);
            for (int i = 0; i < m; i++) step.RopeAndAppend(qkv + (long)i * qkvDim, start + i, kc, vc, capacity);
            step.PrefillAttention(qkv, kc, vc, attn, scores, m, start, steps, capacity);
        }
    }

    /// <summary>Row i (position start + i) attends over positions 0..start + i; one score row per part in flight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PrefillAttention(float* qkv, float* keys, float* values, float* attn, float* scores, int m, int start, int steps, int capacity)
    {
        int d = headDim, group = heads / kvHeads, qkvDim = (heads + 2 * kvHeads) * d, qDim = heads * d;
        SpinWorkers.Shared.Run((part, parts) =>
        {
            (int first, int last) = Split(m * heads, part, parts);
            float* sc = scores + (long)part * steps;
            for (int item = first; item < last; item++)
            {
                int i = item / heads, h = item % heads;
                long kv = (long)(h / group) * capacity * d;
                AttendHead(qkv + (long)i * qkvDim + h * d, keys + kv, values + kv, attn + (long)i * qDim + h * d, sc, start + i + 1, d);
            }
        });
    }
}
