using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
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
        long total = scoresAt + (long)parts * AttendedRows * steps;
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
        public void Run(DecodeStep step, int layer, float* qkv, float* attn, float* scores)
        {
            int capacity = cache.Capacity, qkvDim = step.QkvDim;
            (Tensor keys, Tensor values) = cache.Layer(layer);
            float* kc = (float*)NativeTensor.DataPointer(keys), vc = (float*)NativeTensor.DataPointer(values);
            for (int i = 0; i < m; i++) step.RopeAndAppend(qkv + (long)i * qkvDim, start + i, kc, vc, capacity);
            step.PrefillAttention(qkv, kc, vc, attn, scores, m, start, steps, capacity);
        }
    }

    /// <summary>Query rows of one head that attend together (<see cref="AttendRows"/>).</summary>
    private const int AttendedRows = 4;

    /// <summary>
    /// Row i (position start + i) attends over positions 0..start + i, <see cref="AttendedRows"/> rows of a head at a time;
    /// that many score rows per part in flight.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PrefillAttention(float* qkv, float* keys, float* values, float* attn, float* scores, int m, int start, int steps, int capacity)
    {
        int d = headDim, group = heads / kvHeads, qkvDim = (heads + 2 * kvHeads) * d, qDim = heads * d;
        int blocks = (m + AttendedRows - 1) / AttendedRows;
        SpinWorkers.Shared.Run((part, parts) =>
        {
            (int first, int last) = SpinWorkers.Split(blocks * heads, part, parts);
            float* sc = scores + (long)part * AttendedRows * steps;
            for (int item = first; item < last; item++)
            {
                int i = item / heads * AttendedRows, h = item % heads;
                long kv = (long)(h / group) * capacity * d;
                AttendRows(qkv + (long)i * qkvDim + h * d, qkvDim, keys + kv, values + kv, attn + (long)i * qDim + h * d, qDim, sc, steps,
                    start + i + 1, Math.Min(AttendedRows, m - i), d);
            }
        });
    }

    /// <summary>
    /// <paramref name="count"/> consecutive query rows of one head (row j at q + j * qStride, attending over
    /// <paramref name="firstSteps"/> + j positions, output at o + j * oStride), each computed exactly as
    /// <see cref="AttendHead"/> computes it alone, but with every group of eight keys and every value row loaded once
    /// for all the rows: a long prompt's attention had been reading each key and value once per query row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AttendRows(float* q, int qStride, float* kh, float* vh, float* o, int oStride, float* sc, int scStride, int firstSteps,
        int count, int d)
    {
        if (count == 1 || !Blocked(d))
        {
            for (int j = 0; j < count; j++) AttendHead(q + (long)j * qStride, kh, vh, o + (long)j * oStride, sc, firstSteps + j, d);
            return;
        }
        float scale = (float)(1.0 / Math.Sqrt(d));
        float* tail = stackalloc float[8];
        int lastSteps = firstSteps + count - 1;
        for (int t = 0; t + 8 <= lastSteps; t += 8)
        {
            for (int j = 0; j < count; j++)
            {
                if (t + 8 <= firstSteps + j) (Dot8Keys(q + (long)j * qStride, kh + (long)t * d, d, tail) * scale).Store(sc + (long)j * scStride + t);
            }
        }
        float* sums = stackalloc float[AttendedRows];
        for (int j = 0; j < count; j++)
        {
            int steps = firstSteps + j;
            float* s = sc + (long)j * scStride, qj = q + (long)j * qStride;
            // AttendHead's eight-key groups end at the last multiple of eight; single keys after them.
            for (int t = steps & ~7; t < steps; t++) s[t] = SkinnyMatMul.Dot(qj, kh + (long)t * d, d) * scale;
            sums[j] = Softmax(s, steps);
        }
        WeightedSumRows(sc, scStride, vh, o, oStride, firstSteps, count, d);
        for (int j = 0; j < count; j++) Scale(o + (long)j * oStride, 1f / sums[j], d);
    }

    /// <summary>
    /// o_j = sum over t &lt; firstSteps + j of p_j[t] * v_t for the rows j &lt; count, each element summed as
    /// <see cref="WeightedSum"/> sums it (in order of t, one fused multiply-add a step, the scalar tail unfused): the
    /// positions every row attends to load each value once for all rows, then each row goes on alone over the rest.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WeightedSumRows(float* p, int pStride, float* v, float* o, int oStride, int firstSteps, int count, int d)
    {
        int e = 0;
        Vector512<float>* acc = stackalloc Vector512<float>[AttendedRows];
        for (; e + 16 <= d; e += 16)
        {
            for (int j = 0; j < count; j++) acc[j] = default;
            float* vt = v + e;
            if (count == AttendedRows)
            {
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                float* p0 = p, p1 = p + pStride, p2 = p1 + pStride, p3 = p2 + pStride;
                for (int t = 0; t < firstSteps; t++, vt += d)
                {
                    Vector512<float> x = Vector512.Load(vt);
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Create(p0[t]), x, a0);
                    a1 = Vector512.FusedMultiplyAdd(Vector512.Create(p1[t]), x, a1);
                    a2 = Vector512.FusedMultiplyAdd(Vector512.Create(p2[t]), x, a2);
                    a3 = Vector512.FusedMultiplyAdd(Vector512.Create(p3[t]), x, a3);
                }
                (acc[0], acc[1], acc[2], acc[3]) = (a0, a1, a2, a3);
            }
            else
            {
                for (int t = 0; t < firstSteps; t++, vt += d)
                {
                    Vector512<float> x = Vector512.Load(vt);
                    for (int j = 0; j < count; j++) acc[j] = Vector512.FusedMultiplyAdd(Vector512.Create(p[(long)j * pStride + t]), x, acc[j]);
                }
            }
            for (int j = 0; j < count; j++)
            {
                Vector512<float> a = acc[j];
                float* pj = p + (long)j * pStride;
                for (int t = firstSteps; t < firstSteps + j; t++) a = Vector512.FusedMultiplyAdd(Vector512.Create(pj[t]), Vector512.Load(v + (long)t * d + e), a);
                a.Store(o + (long)j * oStride + e);
            }
        }
        for (; e < d; e++)
        {
            for (int j = 0; j < count; j++)
            {
                float a = 0;
                float* pj = p + (long)j * pStride;
                for (int t = 0; t < firstSteps + j; t++) a += pj[t] * v[(long)t * d + e];
                o[(long)j * oStride + e] = a;
            }
        }
    }
}
