using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Language.Engine.Model;

/// <summary>
/// One decode step (batch 1, one token, float32 on the CPU) in managed code, straight over the model's own
/// weight tensors and the KV cache's memory.
/// </summary>
/// <remarks>
/// Decoding a small model through libtorch cost more in per-op overhead than in arithmetic: a stories15M-shaped
/// step made about 40 tensor calls per layer, and most of the main thread's time went outside the matrix products.
/// Here a step is its matrix-vector products on <see cref="SpinWorkers"/> (five hand-offs per layer) and a few
/// short serial loops; residual adds are fused into the products that produce their inputs. The
/// arithmetic is the libtorch path's in float32, in another summation order: RMSNorm as x * rsqrt(mean(x²) + eps)
/// * w, RoPE from the same cos and signed-sine tables, softmax(q·k / sqrt(d)) · v per query head (head h reads kv
/// head h / group), silu(gate) * up.
/// </remarks>
internal sealed unsafe partial class DecodeStep : IDisposable
{
    /// <summary>Products with fewer weight elements run on the calling thread: waking a core costs more.</summary>
    private const long MinParallelElements = 1 << 14;

    /// <summary>
    /// How far ahead of the row being multiplied the products prefetch, in bytes. The hardware prefetcher alone does not
    /// keep matrices of small rows (1 KB at the stories15M shape) streaming at memory speed.
    /// </summary>
    private const int PrefetchAhead = 8192;

    private readonly int dim, ffn, heads, kvHeads, headDim, vocab;
    private readonly float eps;
    private readonly Layer[] layers;
    private readonly float* embed, finalNorm, cos, signedSin;
    private readonly WeightRows head;
    private readonly ModelMatrices matrices;

    private readonly struct Layer(float* attnNorm, WeightRows qkv, WeightRows o, float* mlpNorm, WeightRows gateUp, WeightRows down)
    {
        public readonly float* AttnNorm = attnNorm, MlpNorm = mlpNorm;
        public readonly WeightRows Qkv = qkv, O = o, GateUp = gateUp, Down = down;
    }

    [ThreadStatic] private static float[]? scratch;

    /// <summary>Each thread's float32 copy of the few weight rows it multiplies next, for packed formats.</summary>
    [ThreadStatic] private static float[]? tiles;

    private DecodeStep(LlamaConfig config, Layer[] layers, float* embed, float* finalNorm, WeightRows head, float* cos, float* signedSin,
        ModelMatrices matrices)
    {
        dim = config.HiddenSize;
        ffn = config.IntermediateSize;
        heads = config.NumAttentionHeads;
        kvHeads = config.KeyValueHeads;
        headDim = config.HeadDim;
        vocab = config.VocabSize;
        eps = (float)config.RmsNormEps;
        this.layers = layers;
        this.embed = embed;
        this.finalNorm = finalNorm;
        this.head = head;
        this.cos = cos;
        this.signedSin = signedSin;
        this.matrices = matrices;
        Format = matrices.Format;
        WeightBytes = matrices.Bytes;
    }

    /// <summary>How the projections and the head are held.</summary>
    public WeightFormat Format { get; }

    /// <summary>Bytes of the projections and the head: what one decode step streams from memory.</summary>
    public long WeightBytes { get; }

    /// <summary>
    /// The step for a float32 CPU model whose tensors are all contiguous; null for any other model. Its projections and
    /// head are <paramref name="packed"/> (complete, in any format; the step takes ownership), or, without it, the
    /// model's own float32 tensors.
    /// </summary>
    public static DecodeStep? TryCreate(LlamaConfig config, LlamaModel model, Tensor headWeight, RotaryEmbedding rope, ModelMatrices? packed = null)
    {
        var all = new List<Tensor> { model.EmbedTokens.Weight, model.Norm.Weight, rope.CosTable, rope.SignedSinTable };
        foreach (LlamaDecoderLayer b in model.Blocks) all.AddRange([b.InputNorm.Weight, b.PostAttentionNorm.Weight]);
        if (packed is null)
        {
            all.Add(headWeight);
            foreach (LlamaDecoderLayer b in model.Blocks) all.AddRange([b.Attention.QkvWeight, b.Attention.OutWeight, b.Mlp.GateUpWeight, b.Mlp.DownWeight]);
        }
        if (all.Any(t => t.dtype != ScalarType.Float32 || t.device_type != DeviceType.CPU || !t.is_contiguous()))
            return null;
        if (packed is { Complete: false }) throw new ArgumentException("every layer and the head must be packed", nameof(packed));
        ModelMatrices matrices = packed ?? Borrowed(model, headWeight);
        static float* P(Tensor t) => (float*)NativeTensor.DataPointer(t);
        Layer[] layers = [.. model.Blocks.Select((b, l) => new Layer(P(b.InputNorm.Weight), matrices.Layer(l, 0).View, matrices.Layer(l, 1).View,
            P(b.PostAttentionNorm.Weight), matrices.Layer(l, 2).View, matrices.Layer(l, 3).View))];
        return new DecodeStep(config, layers, P(model.EmbedTokens.Weight), P(model.Norm.Weight), matrices.Head.View,
            P(rope.CosTable), P(rope.SignedSinTable), matrices);
    }

    /// <summary>The kernels' views of the model's own float32 projections and head.</summary>
    private static ModelMatrices Borrowed(LlamaModel model, Tensor headWeight)
    {
        var matrices = new ModelMatrices(model.Blocks.Count);
        for (int l = 0; l < model.Blocks.Count; l++)
        {
            LlamaDecoderLayer b = model.Blocks[l];
            matrices.SetLayer(l, b.Attention.QkvWeight, b.Attention.OutWeight, b.Mlp.GateUpWeight, b.Mlp.DownWeight);
        }
        matrices.SetHead(headWeight);
        return matrices;
    }

    public void Dispose() => matrices.Dispose();

    /// <summary>This thread's tile of at least <paramref name="floats"/> floats (pinned, so its address is stable).</summary>
    private static float* Tile(int floats)
    {
        if (tiles is null || tiles.Length < floats) tiles = GC.AllocateUninitializedArray<float>(floats, pinned: true);
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(tiles));
    }

    /// <summary>Address of token <paramref name="id"/>'s embedding row.</summary>
    public float* Embedding(int id) => embed + (long)id * dim;

    /// <summary>
    /// Runs the embedding row <paramref name="x0"/> [hidden] at the cache's next position, appends its keys and
    /// values, advances the cache and writes float32 logits [vocab].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run(float* x0, KvCache cache, float* logits)
    {
        if (cache.BatchSize != 1) throw new ArgumentException("the decode step runs one sequence");
        cache.EnsureRoom(1);
        CheckCache(cache.Layer(0).Keys);

        int pos = cache.Length, capacity = cache.Capacity;
        int qDim = heads * headDim, kvDim = kvHeads * headDim;
        int xAt = 0, xbAt = Align(xAt + dim), qkvAt = Align(xbAt + dim), attnAt = Align(qkvAt + qDim + 2 * kvDim);
        int hbAt = Align(attnAt + qDim), scoresAt = Align(hbAt + 3 * ffn), total = Align(scoresAt + heads * (pos + 1));
        if (scratch is null || scratch.Length < total) scratch = GC.AllocateUninitializedArray<float>(Math.Max(total, 2 * (scratch?.Length ?? 0)), pinned: true);
        float* s = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(scratch));
        float* x = s + xAt, xb = s + xbAt, qkv = s + qkvAt, attn = s + attnAt, hb = s + hbAt, scores = s + scoresAt;

        new Span<float>(x0, dim).CopyTo(new Span<float>(x, dim));
        RunLayers(new OneRow(cache, pos), x, xb, qkv, attn, hb, scores, 1);
        RmsNorm(x, finalNorm, xb, dim, eps);
        MatVec(head, xb, logits, vocab, dim, accumulate: false);
        cache.Advance(1);
    }

    /// <summary>
    /// What differs between the decode step, the batched step and the prefill inside a layer: where each row's keys
    /// and values go, and what it attends over. The rest of the layer is <see cref="RunLayers"/>, written once.
    /// </summary>
    private interface IRowAttention
    {
        /// <summary>Rotates and appends the rows' keys and values (in <paramref name="qkv"/>) to layer
        /// <paramref name="layer"/>'s cache, then writes each row's attention output to <paramref name="attn"/>.</summary>
        void Run(DecodeStep step, int layer, float* qkv, float* attn, float* scores);
    }

    /// <summary>One sequence's next token at position <paramref name="pos"/>.</summary>
    private readonly struct OneRow(KvCache cache, int pos) : IRowAttention
    {
        public void Run(DecodeStep step, int layer, float* qkv, float* attn, float* scores)
        {
            (Tensor keys, Tensor values) = cache.Layer(layer);
            float* kc = (float*)NativeTensor.DataPointer(keys), vc = (float*)NativeTensor.DataPointer(values);
            step.RopeAndAppend(qkv, pos, kc, vc, cache.Capacity);
            step.Attention(qkv, kc, vc, attn, scores, pos, cache.Capacity);
        }
    }

    /// <summary>
    /// Every layer over the m rows of <paramref name="x"/> [m, hidden], in place; <paramref name="hb"/> holds 3 x m x ffn
    /// floats: the SwiGLU output and, after it, the gate and up products. One row takes the matrix-vector kernels and
    /// more rows the tiled ones (<see cref="MatMul"/> chooses); both sum every dot product in the same order, so a row's
    /// result does not depend on the path. Generic over the attention so each caller's loop is compiled for it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunLayers<TAttention>(TAttention attention, float* x, float* xb, float* qkv, float* attn, float* hb, float* scores, int m)
        where TAttention : struct, IRowAttention
    {
        int qDim = heads * headDim, qkvDim = QkvDim;
        for (int l = 0; l < layers.Length; l++)
        {
            Layer w = layers[l];
            for (int i = 0; i < m; i++) RmsNorm(x + (long)i * dim, w.AttnNorm, xb + (long)i * dim, dim, eps);
            MatMul(w.Qkv, xb, qkv, m, qkvDim, dim, accumulate: false);
            attention.Run(this, l, qkv, attn, scores);

            MatMul(w.O, attn, x, m, dim, qDim, accumulate: true);
            for (int i = 0; i < m; i++) RmsNorm(x + (long)i * dim, w.MlpNorm, xb + (long)i * dim, dim, eps);
            SwiGlu(w.GateUp, xb, hb + (long)m * ffn, hb, m, ffn, dim);
            MatMul(w.Down, hb, x, m, dim, ffn, accumulate: true);
        }
    }

    /// <summary>
    /// Throws unless <paramref name="keys"/> (a cache's first layer) has this model's layout: float32 on the CPU,
    /// [batch, kvHeads, capacity, headDim], contiguous, as the steps' pointer arithmetic assumes.
    /// </summary>
    private void CheckCache(Tensor keys)
    {
        if (keys.dtype != ScalarType.Float32 || keys.device_type != DeviceType.CPU || keys.shape[1] != kvHeads || keys.shape[3] != headDim ||
            !keys.is_contiguous())
            throw new ArgumentException("the cache does not belong to this model");
    }

    /// <summary>Width of a row's fused query, key and value projection.</summary>
    private int QkvDim => (heads + 2 * kvHeads) * headDim;

    private static int Align(int n) => (n + 15) & ~15;

    /// <summary>y[r] (+)= w[r, :] · x for r in [0, n); w is [n, k].</summary>
    private static void MatVec(WeightRows w, float* x, float* y, int n, int k, bool accumulate)
    {
        if ((long)n * k < MinParallelElements)
        {
            MatVecRows(w, x, y, k, 0, n, accumulate);
            return;
        }
        SpinWorkers.Shared.Run((part, parts) =>
        {
            (int start, int end) = SpinWorkers.Split(n, part, parts);
            MatVecRows(w, x, y, k, start, end, accumulate);
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MatVecRows(WeightRows w, float* x, float* y, int k, int start, int end, bool accumulate)
    {
        byte* limit = w.Row(end);
        int rowBytes = w.RowBytes;
        float* tile = w.Format == WeightFormat.Fp32 ? null : Tile(k);
        for (int r = start; r < end; r++)
        {
            Prefetch(w.Row(r) + PrefetchAhead, rowBytes, limit);
            float d = w.Dot(r, x, tile);
            y[r] = accumulate ? y[r] + d : d;
        }
    }

    /// <summary>
    /// silu(g) = g / (1 + exp(-g)) in every lane, with <c>Vector256.Exp</c>: lane by lane, so a lane's result depends on
    /// its own input only, and how outputs group into eights changes no bit. One vector exp for eight outputs: scalar
    /// <c>MathF.Exp</c> calls were a fifth of a prefill's time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Silu(Vector256<float> g) => g / (Vector256<float>.One + Vector256.Exp(-g));

    /// <summary>
    /// hb[i, r] = silu(gate[r] · x[i]) * (up[r] · x[i]); gateUp is [2n, k], gate rows first; hb is [m, n]; gu is [m, 2n] of
    /// scratch. The gate and up products are one <see cref="MatMul"/> over the fused matrix, and silu(g) * u runs after it
    /// eight lanes at a time (each lane on its own input, so how rows group into eights changes no bit); computing silu
    /// inside the product tiles instead took a quarter longer per weight than the plain products.
    /// </summary>
    private static void SwiGlu(WeightRows gateUp, float* x, float* gu, float* hb, int m, int n, int k)
    {
        MatMul(gateUp, x, gu, m, 2 * n, k, accumulate: false);
        float* g = stackalloc float[8], u = stackalloc float[8], h = stackalloc float[8];
        for (int i = 0; i < m; i++)
        {
            float* gi = gu + (long)i * 2 * n, ui = gi + n, hi = hb + (long)i * n;
            int r = 0;
            for (; r + 8 <= n; r += 8) (Silu(Vector256.Load(gi + r)) * Vector256.Load(ui + r)).Store(hi + r);
            if (r == n) continue;
            int count = n - r;
            new Span<float>(gi + r, count).CopyTo(new Span<float>(g, 8));
            new Span<float>(ui + r, count).CopyTo(new Span<float>(u, 8));
            (Silu(Vector256.Load(g)) * Vector256.Load(u)).Store(h);
            new Span<float>(h, count).CopyTo(new Span<float>(hi + r, count));
        }
    }


    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Attention(float* qkv, float* keys, float* values, float* attn, float* scores, int pos, int capacity)
    {
        int d = headDim, group = heads / kvHeads, steps = pos + 1;
        void Heads(int first, int last)
        {
            for (int h = first; h < last; h++)
            {
                AttendHead(qkv + h * d, keys + (long)(h / group) * capacity * d, values + (long)(h / group) * capacity * d,
                    attn + h * d, scores + h * steps, steps, d);
            }
        }
        if ((long)heads * steps * d * 2 < MinParallelElements) Heads(0, heads);
        else SpinWorkers.Shared.Run((part, parts) =>
        {
            (int start, int end) = SpinWorkers.Split(heads, part, parts);
            Heads(start, end);
        });
    }

    /// <summary>o = softmax(q · k_t / sqrt(d)) · v_t over t in [0, steps) for one query head.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AttendHead(float* q, float* kh, float* vh, float* o, float* sc, int steps, int d)
    {
        float scale = (float)(1.0 / Math.Sqrt(d));
        int t = 0;
        if (Blocked(d))
        {
            float* tail = stackalloc float[8];
            for (; t + 8 <= steps; t += 8) (Dot8Keys(q, kh + (long)t * d, d, tail) * scale).Store(sc + t);
        }
        for (; t < steps; t++) sc[t] = SkinnyMatMul.Dot(q, kh + (long)t * d, d) * scale;
        float sum = Softmax(sc, steps);
        WeightedSum(sc, vh, o, steps, d);
        Scale(o, 1f / sum, d);
    }

    /// <summary>sc[t] = exp(sc[t] - max) over t in [0, steps); returns their sum, taken in order of t.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Softmax(float* sc, int steps)
    {
        float max = Max(sc, steps);
        // exp lane by lane (Vector256.Exp), so a weight does not depend on where its group of eight starts.
        var top = Vector256.Create(max);
        int t = 0;
        for (; t + 8 <= steps; t += 8) Vector256.Exp(Vector256.Load(sc + t) - top).Store(sc + t);
        for (; t < steps; t++) sc[t] = Vector256.Exp(Vector256.CreateScalar(sc[t] - max)).ToScalar();
        float sum = 0;
        for (t = 0; t < steps; t++) sum += sc[t];
        return sum;
    }

    /// <summary>The largest of x[0..n) (NaN-free input; the order of comparisons cannot change a maximum).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Max(float* x, int n)
    {
        float max = float.NegativeInfinity;
        int i = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            Vector512<float> m = Vector512.Create(float.NegativeInfinity);
            for (; i + 16 <= n; i += 16) m = Vector512.Max(m, Vector512.Load(x + i));
            for (int l = 0; l < 16; l++) max = m.GetElement(l) > max ? m.GetElement(l) : max;
        }
        for (; i < n; i++) max = x[i] > max ? x[i] : max;
        return max;
    }

    /// <summary>
    /// o = sum over t of p[t] * v_t (v_t = v + t * d), each element summed over t in order with one fused multiply-add a
    /// step (the scalar tail unfused), exactly as adding one p[t] * v_t after another into o does; but 64 elements of o stay in
    /// registers across all t instead of being loaded and stored at every step.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WeightedSum(float* p, float* v, float* o, int steps, int d)
    {
        int e = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; e + 64 <= d; e += 64)
            {
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                float* vt = v + e;
                for (int t = 0; t < steps; t++, vt += d)
                {
                    var pt = Vector512.Create(p[t]);
                    a0 = Vector512.FusedMultiplyAdd(pt, Vector512.Load(vt), a0);
                    a1 = Vector512.FusedMultiplyAdd(pt, Vector512.Load(vt + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(pt, Vector512.Load(vt + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(pt, Vector512.Load(vt + 48), a3);
                }
                a0.Store(o + e);
                a1.Store(o + e + 16);
                a2.Store(o + e + 32);
                a3.Store(o + e + 48);
            }
            for (; e + 16 <= d; e += 16)
            {
                Vector512<float> a = default;
                float* vt = v + e;
                for (int t = 0; t < steps; t++, vt += d) a = Vector512.FusedMultiplyAdd(Vector512.Create(p[t]), Vector512.Load(vt), a);
                a.Store(o + e);
            }
        }
        for (; e < d; e++)
        {
            float a = 0;
            for (int t = 0; t < steps; t++) a += p[t] * v[(long)t * d + e];
            o[e] = a;
        }
    }

    /// <summary>Prefetches the cache lines of the <paramref name="bytes"/> from <paramref name="p"/> that lie below <paramref name="limit"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* p, int bytes, byte* limit)
    {
        if (!Sse.IsSupported) return;
        byte* end = p + bytes < limit ? p + bytes : limit;
        for (; p < end; p += 64) Sse.Prefetch0(p);
    }

    /// <summary>out = x * rsqrt(mean(x²) + eps) * w.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RmsNorm(float* x, float* w, float* output, int n, float eps)
    {
        float ss = SkinnyMatMul.Dot(x, x, n);
        float inv = 1f / MathF.Sqrt(ss / n + eps);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 16 <= n; i += 16)
                (Vector512.Load(x + i) * inv * Vector512.Load(w + i)).Store(output + i);
        }
        for (; i < n; i++) output[i] = x[i] * inv * w[i];
    }

    /// <summary>
    /// Rotates one row's query and key heads (q, k, v in <c>qkv</c>'s layout) for position <paramref name="pos"/> and
    /// writes its keys and values at that position of one sequence's cache (<paramref name="keys"/>,
    /// <paramref name="values"/>: [kvHeads, capacity, headDim]).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RopeAndAppend(float* row, int pos, float* keys, float* values, int capacity)
    {
        int qDim = heads * headDim, kvDim = kvHeads * headDim;
        float* cosRow = cos + (long)pos * headDim, sinRow = signedSin + (long)pos * headDim;
        for (int h = 0; h < heads + kvHeads; h++) Rope(row + h * headDim, cosRow, sinRow, headDim);
        for (int j = 0; j < kvHeads; j++)
        {
            long at = ((long)j * capacity + pos) * headDim;
            new Span<float>(row + qDim + j * headDim, headDim).CopyTo(new Span<float>(keys + at, headDim));
            new Span<float>(row + qDim + kvDim + j * headDim, headDim).CopyTo(new Span<float>(values + at, headDim));
        }
    }

    /// <summary>Hugging Face rotate_half RoPE in place: v * cos + roll(v, d/2) * signedSin.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rope(float* v, float* cosRow, float* sinRow, int d)
    {
        int half = d / 2;
        for (int i = 0; i < half; i++)
        {
            float a = v[i], b = v[i + half];
            v[i] = a * cosRow[i] + b * sinRow[i];
            v[i + half] = b * cosRow[i + half] + a * sinRow[i + half];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scale(float* y, float a, int n)
    {
        for (int i = 0; i < n; i++) y[i] *= a;
    }
}
