using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Language.Engine.Model;

/// <summary>
/// The decode step for m sequences at once (continuous batching), each at its own position in its own slot of a
/// <see cref="BatchKvCache"/>.
/// </summary>
/// <remarks>
/// Decode is memory-bound: a batch-1 step streams every weight once for one row of activations. Here each weight
/// row is read once per step for all m rows: the products walk four weight rows at a time against two activation
/// rows, so a block of weights is fetched from memory once and reused from L1 for every pair of rows. Every dot
/// product is summed in exactly the order <see cref="SkinnyMatMul.Dot"/> sums it (two 16-lane accumulators over
/// alternating chunks, one more chunk into the first, a lane sum, a scalar tail), and every other operation is
/// the batch-1 step's own code per row, so row i's logits are bit for bit those <see cref="Run"/> gives that
/// sequence alone: batching changes the speed, never the tokens.
/// </remarks>
internal sealed unsafe partial class DecodeStep
{
    [ThreadStatic] private static float[]? batchScratch;

    /// <summary>
    /// Runs token <c>ids[i]</c> for the sequence in slot i (i &lt; ids.Length) at that slot's next position, appends
    /// its keys and values, advances every slot by one and writes float32 logits [ids.Length, vocab].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void RunBatch(ReadOnlySpan<int> ids, BatchKvCache cache, float* logits)
    {
        int m = ids.Length;
        if (m < 1 || m > cache.Slots) throw new ArgumentOutOfRangeException(nameof(ids), $"{m} sequences for {cache.Slots} slots");
        CheckCache(cache.Layer(0).Keys);
        var positions = new int[m];
        int maxSteps = 0;
        for (int i = 0; i < m; i++)
        {
            if ((uint)ids[i] >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {ids[i]} is outside the vocabulary");
            KvCache slot = cache.Slot(i);
            slot.EnsureRoom(1);
            positions[i] = slot.Length;
            maxSteps = Math.Max(maxSteps, slot.Length + 1);
        }

        int capacity = cache.Capacity;
        int qDim = heads * headDim, kvDim = kvHeads * headDim, qkvDim = qDim + 2 * kvDim;
        long slotStride = (long)kvHeads * capacity * headDim;
        int xAt = 0, xbAt = Align(xAt + m * dim), qkvAt = Align(xbAt + m * dim), attnAt = Align(qkvAt + m * qkvDim);
        int hbAt = Align(attnAt + m * qDim), scoresAt = Align(hbAt + 3 * m * ffn), total = Align(scoresAt + m * heads * maxSteps);
        if (batchScratch is null || batchScratch.Length < total)
            batchScratch = GC.AllocateUninitializedArray<float>(Math.Max(total, 2 * (batchScratch?.Length ?? 0)), pinned: true);
        float* s = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(batchScratch));
        float* x = s + xAt, xb = s + xbAt, qkv = s + qkvAt, attn = s + attnAt, hb = s + hbAt, scores = s + scoresAt;

        for (int i = 0; i < m; i++) new Span<float>(Embedding(ids[i]), dim).CopyTo(new Span<float>(x + (long)i * dim, dim));
        RunLayers(new SlotRows(cache, positions, maxSteps, slotStride), x, xb, qkv, attn, hb, scores, m);
        for (int i = 0; i < m; i++) RmsNorm(x + (long)i * dim, finalNorm, xb + (long)i * dim, dim, eps);
        MatMul(head, xb, logits, m, vocab, dim, accumulate: false);
        for (int i = 0; i < m; i++) cache.Slot(i).SetLength(positions[i] + 1);
    }

    /// <summary>Row i is its own sequence, in slot i of the batch cache, at position positions[i].</summary>
    private readonly struct SlotRows(BatchKvCache cache, int[] positions, int maxSteps, long slotStride) : IRowAttention
    {
        public void Run(DecodeStep step, int layer, float* qkv, float* attn, float* scores)
        {
            int capacity = cache.Capacity, qkvDim = step.QkvDim;
            (Tensor keys, Tensor values) = cache.Layer(layer);
            float* kc = (float*)NativeTensor.DataPointer(keys), vc = (float*)NativeTensor.DataPointer(values);
            for (int i = 0; i < positions.Length; i++)
                step.RopeAndAppend(qkv + (long)i * qkvDim, positions[i], kc + i * slotStride, vc + i * slotStride, capacity);
            step.AttentionBatch(qkv, kc, vc, attn, scores, positions, maxSteps, capacity, slotStride);
        }
    }

    /// <summary>Row i's query heads attend over its own slot's keys and values at positions 0..positions[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void AttentionBatch(float* qkv, float* keys, float* values, float* attn, float* scores, int[] positions, int maxSteps,
        int capacity, long slotStride)
    {
        int d = headDim, group = heads / kvHeads, m = positions.Length, qkvDim = (heads + 2 * kvHeads) * d, qDim = heads * d;
        void Items(int first, int last)
        {
            for (int item = first; item < last; item++)
            {
                int i = item / heads, h = item % heads;
                long kv = i * slotStride + (long)(h / group) * capacity * d;
                AttendHead(qkv + (long)i * qkvDim + h * d, keys + kv, values + kv, attn + (long)i * qDim + h * d,
                    scores + (long)item * maxSteps, positions[i] + 1, d);
            }
        }
        long work = 0;
        foreach (int p in positions) work += (long)heads * (p + 1) * d * 2;
        if (work < MinParallelElements) Items(0, m * heads);
        else SpinWorkers.Shared.Run((part, parts) =>
        {
            (int start, int end) = SpinWorkers.Split(m * heads, part, parts);
            Items(start, end);
        });
    }

    /// <summary>y[i, r] (+)= w[r, :] · x[i, :] for i in [0, m), r in [0, n); w is [n, k], x is [m, k], y is [m, n].</summary>
    internal static void MatMul(WeightRows w, float* x, float* y, int m, int n, int k, bool accumulate)
    {
        // One row takes the matrix-vector kernel, whose dot products are these bit for bit, and which reads packed
        // weights without dequantizing them into a tile first.
        if (m == 1)
        {
            MatVec(w, x, y, n, k, accumulate);
            return;
        }
        if ((long)n * k * m < MinParallelElements)
        {
            MatMulRows(w, x, y, m, n, k, 0, n, accumulate);
            return;
        }
        SpinWorkers.Shared.Run((part, parts) =>
        {
            (int start, int end) = SpinWorkers.Split(n, part, parts);
            MatMulRows(w, x, y, m, n, k, start, end, accumulate);
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MatMulRows(WeightRows w, float* x, float* y, int m, int n, int k, int start, int end, bool accumulate)
    {
        byte* limit = w.Row(end);
        int rowBytes = w.RowBytes;
        // Packed rows are dequantized four at a time into this thread's tile and multiplied from there with every row of x.
        float* tile = w.Format == WeightFormat.Fp32 ? null : Tile(4 * k);
        float* d = stackalloc float[8];
        int r = start;
        if (Blocked(k))
        {
            for (; r + 4 <= end; r += 4)
            {
                Prefetch(w.Row(r) + PrefetchAhead, 4 * rowBytes, limit);
                float* w0 = w.Rows(r, 4, tile);
                int i = 0;
                for (; i + 2 <= m; i += 2)
                {
                    Vector256<float> dots = Dot4x2(w0, w0 + k, w0 + 2 * k, w0 + 3 * k, x + (long)i * k, x + (long)(i + 1) * k, k, d);
                    float* y0 = y + (long)i * n + r, y1 = y0 + n;
                    if (accumulate)
                    {
                        (Vector128.Load(y0) + dots.GetLower()).Store(y0);
                        (Vector128.Load(y1) + dots.GetUpper()).Store(y1);
                    }
                    else
                    {
                        dots.GetLower().Store(y0);
                        dots.GetUpper().Store(y1);
                    }
                }
                for (; i < m; i++)
                {
                    for (int c = 0; c < 4; c++) Put(y, (long)i * n + r + c, SkinnyMatMul.Dot(w0 + (long)c * k, x + (long)i * k, k), accumulate);
                }
            }
        }
        for (; r < end; r++)
        {
            Prefetch(w.Row(r) + PrefetchAhead, rowBytes, limit);
            float* row = w.Rows(r, 1, tile);
            for (int i = 0; i < m; i++) Put(y, (long)i * n + r, SkinnyMatMul.Dot(row, x + (long)i * k, k), accumulate);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(float* y, long at, float v, bool accumulate) => y[at] = accumulate ? y[at] + v : v;

    /// <summary>Whether <see cref="SkinnyMatMul.Dot"/> takes its 16-lane path for length k, which <see cref="Dot4x2"/> mirrors.</summary>
    private static bool Blocked(int k) => SkinnyMatMul.Wide && k >= 16;

    /// <summary>
    /// [Sum(v0), ..., Sum(v7)] with <see cref="SkinnyMatMul.Sum"/>'s order, for eight vectors at once: the lanes are
    /// paired by shuffles across vectors instead of within each, so a level of the tree costs three instructions for
    /// all eight: 3 instructions a sum, against 8 for one vector at a time and 27 for Vector512.Sum as .NET 10 compiles it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Sum8(Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3,
        Vector512<float> v4, Vector512<float> v5, Vector512<float> v6, Vector512<float> v7)
    {
        // Adjacent lanes: per quarter [A0 + A1, A2 + A3, B0 + B1, B2 + B3].
        Vector512<float> p01 = Avx512F.Shuffle(v0, v1, 0x88) + Avx512F.Shuffle(v0, v1, 0xDD);
        Vector512<float> p23 = Avx512F.Shuffle(v2, v3, 0x88) + Avx512F.Shuffle(v2, v3, 0xDD);
        Vector512<float> p45 = Avx512F.Shuffle(v4, v5, 0x88) + Avx512F.Shuffle(v4, v5, 0xDD);
        Vector512<float> p67 = Avx512F.Shuffle(v6, v7, 0x88) + Avx512F.Shuffle(v6, v7, 0xDD);
        // Pairs of pairs: lane 4q + s holds quarter q's sum of v_s (s < 4) or of v_(4 + s).
        Vector512<float> q0 = Avx512F.Shuffle(p01, p23, 0x88) + Avx512F.Shuffle(p01, p23, 0xDD);
        Vector512<float> q1 = Avx512F.Shuffle(p45, p67, 0x88) + Avx512F.Shuffle(p45, p67, 0xDD);
        // Quarters 0 + 1 and 2 + 3: [q0's, q0's, q1's, q1's].
        Vector512<float> h = Avx512F.Shuffle4x128(q0, q1, 0b10_00_10_00) + Avx512F.Shuffle4x128(q0, q1, 0b11_01_11_01);
        // Then those two: v0..v3's sums in the lowest quarter, v4..v7's in the next.
        return (Avx512F.Shuffle4x128(h, h, 0b10_00_10_00) + Avx512F.Shuffle4x128(h, h, 0b11_01_11_01)).GetLower();
    }

    /// <summary>
    /// Lane c = q · k_c for the eight keys k_c = keys + c * d, each summed exactly as <see cref="SkinnyMatMul.Dot"/>(q, k_c, d)
    /// sums it (its 16-lane path; see <see cref="Blocked"/>): one lane sum for eight scores. tail is eight floats of scratch.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Dot8Keys(float* q, float* keys, int d, float* tail)
    {
        float* k0 = keys, k1 = k0 + d, k2 = k1 + d, k3 = k2 + d, k4 = k3 + d, k5 = k4 + d, k6 = k5 + d, k7 = k6 + d;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default;
        int j = 0;
        for (; j + 32 <= d; j += 32)
        {
            Vector512<float> p = Vector512.Load(q + j), r = Vector512.Load(q + j + 16);
            a0 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k0 + j), a0);
            b0 = Vector512.FusedMultiplyAdd(r, Vector512.Load(k0 + j + 16), b0);
            a1 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k1 + j), a1);
            b1 = Vector512.FusedMultiplyAdd(r, Vector512.Load(k1 + j + 16), b1);
            a2 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k2 + j), a2);
            b2 = Vector512.FusedMultiplyAdd(r, Vector512.Load(k2 + j + 16), b2);
            a3 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k3 + j), a3);
            b3 = Vector512.FusedMultiplyAdd(r, Vector512.Load(k3 + j + 16), b3);
            a4 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k4 + j), a4);
            b4 = Vector512.FusedMultiplyAdd(r, Vector512.Load(k4 + j + 16), b4);
            a5 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k5 + j), a5);
            b5 = Vector512.FusedMultiplyAdd(r, Vector512.Load(k5 + j + 16), b5);
            a6 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k6 + j), a6);
            b6 = Vector512.FusedMultiplyAdd(r, Vector512.Load(k6 + j + 16), b6);
            a7 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k7 + j), a7);
            b7 = Vector512.FusedMultiplyAdd(r, Vector512.Load(k7 + j + 16), b7);
        }
        for (; j + 16 <= d; j += 16)
        {
            Vector512<float> p = Vector512.Load(q + j);
            a0 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k0 + j), a0);
            a1 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k1 + j), a1);
            a2 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k2 + j), a2);
            a3 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k3 + j), a3);
            a4 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k4 + j), a4);
            a5 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k5 + j), a5);
            a6 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k6 + j), a6);
            a7 = Vector512.FusedMultiplyAdd(p, Vector512.Load(k7 + j), a7);
        }
        Vector256<float> sums = Sum8(a0 + b0, a1 + b1, a2 + b2, a3 + b3, a4 + b4, a5 + b5, a6 + b6, a7 + b7);
        if (j == d) return sums;
        sums.Store(tail);
        for (; j < d; j++)
        {
            tail[0] += q[j] * k0[j];
            tail[1] += q[j] * k1[j];
            tail[2] += q[j] * k2[j];
            tail[3] += q[j] * k3[j];
            tail[4] += q[j] * k4[j];
            tail[5] += q[j] * k5[j];
            tail[6] += q[j] * k6[j];
            tail[7] += q[j] * k7[j];
        }
        return Vector256.Load(tail);
    }

    /// <summary>
    /// Lane 4 * j + c = w_c · x_j for four weight rows and two activation rows of length k, each summed exactly as
    /// <see cref="SkinnyMatMul.Dot"/>(w_c, x_j, k) sums it (its 16-lane path; see <see cref="Blocked"/>); d is eight
    /// floats of scratch for a scalar tail.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Dot4x2(float* w0, float* w1, float* w2, float* w3, float* x0, float* x1, int k, float* d)
    {
        Vector512<float> a00 = default, a10 = default, a20 = default, a30 = default, a01 = default, a11 = default, a21 = default, a31 = default;
        Vector512<float> b00 = default, b10 = default, b20 = default, b30 = default, b01 = default, b11 = default, b21 = default, b31 = default;
        int j = 0;
        for (; j + 32 <= k; j += 32)
        {
            Vector512<float> p0 = Vector512.Load(x0 + j), p1 = Vector512.Load(x1 + j);
            Vector512<float> q0 = Vector512.Load(x0 + j + 16), q1 = Vector512.Load(x1 + j + 16);
            Vector512<float> v = Vector512.Load(w0 + j);
            a00 = Vector512.FusedMultiplyAdd(v, p0, a00);
            a01 = Vector512.FusedMultiplyAdd(v, p1, a01);
            v = Vector512.Load(w0 + j + 16);
            b00 = Vector512.FusedMultiplyAdd(v, q0, b00);
            b01 = Vector512.FusedMultiplyAdd(v, q1, b01);
            v = Vector512.Load(w1 + j);
            a10 = Vector512.FusedMultiplyAdd(v, p0, a10);
            a11 = Vector512.FusedMultiplyAdd(v, p1, a11);
            v = Vector512.Load(w1 + j + 16);
            b10 = Vector512.FusedMultiplyAdd(v, q0, b10);
            b11 = Vector512.FusedMultiplyAdd(v, q1, b11);
            v = Vector512.Load(w2 + j);
            a20 = Vector512.FusedMultiplyAdd(v, p0, a20);
            a21 = Vector512.FusedMultiplyAdd(v, p1, a21);
            v = Vector512.Load(w2 + j + 16);
            b20 = Vector512.FusedMultiplyAdd(v, q0, b20);
            b21 = Vector512.FusedMultiplyAdd(v, q1, b21);
            v = Vector512.Load(w3 + j);
            a30 = Vector512.FusedMultiplyAdd(v, p0, a30);
            a31 = Vector512.FusedMultiplyAdd(v, p1, a31);
            v = Vector512.Load(w3 + j + 16);
            b30 = Vector512.FusedMultiplyAdd(v, q0, b30);
            b31 = Vector512.FusedMultiplyAdd(v, q1, b31);
        }
        for (; j + 16 <= k; j += 16)
        {
            Vector512<float> p0 = Vector512.Load(x0 + j), p1 = Vector512.Load(x1 + j);
            Vector512<float> v = Vector512.Load(w0 + j);
            a00 = Vector512.FusedMultiplyAdd(v, p0, a00);
            a01 = Vector512.FusedMultiplyAdd(v, p1, a01);
            v = Vector512.Load(w1 + j);
            a10 = Vector512.FusedMultiplyAdd(v, p0, a10);
            a11 = Vector512.FusedMultiplyAdd(v, p1, a11);
            v = Vector512.Load(w2 + j);
            a20 = Vector512.FusedMultiplyAdd(v, p0, a20);
            a21 = Vector512.FusedMultiplyAdd(v, p1, a21);
            v = Vector512.Load(w3 + j);
            a30 = Vector512.FusedMultiplyAdd(v, p0, a30);
            a31 = Vector512.FusedMultiplyAdd(v, p1, a31);
        }
        Vector256<float> sums = Sum8(a00 + b00, a10 + b10, a20 + b20, a30 + b30, a01 + b01, a11 + b11, a21 + b21, a31 + b31);
        if (j == k) return sums;
        sums.Store(d);
        for (; j < k; j++)
        {
            d[0] += w0[j] * x0[j];
            d[1] += w1[j] * x0[j];
            d[2] += w2[j] * x0[j];
            d[3] += w3[j] * x0[j];
            d[4] += w0[j] * x1[j];
            d[5] += w1[j] * x1[j];
            d[6] += w2[j] * x1[j];
            d[7] += w3[j] * x1[j];
        }
        return Vector256.Load(d);
    }
}
