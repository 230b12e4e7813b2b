using TorchSharp;
using static TorchSharp.torch;
using static LLark.Checkpoints.KeptScalars;
using LLark.Checkpoints;

namespace LLark.Language.Engine.Model;

/// <summary>
/// Grouped-query self-attention with rotary positions and a KV cache. q_proj, k_proj and v_proj keep their
/// checkpoint names but are views into one fused [q+k+v, hidden] buffer, so one matmul serves all three.
/// Query head h reads kv head h / (heads / kv_heads) (repeat-interleave), which is what viewing the query
/// heads as [kv_heads, group] gives without copying any key or value.
/// </summary>
internal sealed class LlamaAttention : nn.Module
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear o_proj;
    private readonly Tensor qkvWeight;
    private readonly int heads;
    private readonly int kvHeads;
    private readonly int headDim;

    public LlamaAttention(string name, LlamaConfig config, ScalarType dtype, Device device) : base(name)
    {
        heads = config.NumAttentionHeads;
        kvHeads = config.KeyValueHeads;
        headDim = config.HeadDim;
        long q = (long)heads * headDim, kv = (long)kvHeads * headDim;
        Tensor fused = empty([q + 2 * kv, config.HiddenSize], dtype: dtype, device: device);
        q_proj = new Linear("q_proj", fused.narrow(0, 0, q));
        k_proj = new Linear("k_proj", fused.narrow(0, q, kv));
        v_proj = new Linear("v_proj", fused.narrow(0, q + kv, kv));
        o_proj = new Linear("o_proj", empty([config.HiddenSize, q], dtype: dtype, device: device));
        RegisterComponents();
        qkvWeight = fused;
    }

    /// <summary>The fused [q + k + v, hidden] projection.</summary>
    internal Tensor QkvWeight => qkvWeight;

    internal Tensor OutWeight => o_proj.Weight;

    /// <summary>Every tensor that holds this module's projection weights: the fused buffer and the parameters viewing it.</summary>
    internal IEnumerable<Tensor> ProjectionTensors() => [qkvWeight, q_proj.Weight, k_proj.Weight, v_proj.Weight, o_proj.Weight];

    /// <summary>Training-time additions to q/k/v (fused) and o (LoRA); null at inference, where they are merged into the weights.</summary>
    internal ProjectionAdapters? Adapters { get; set; }

    public Tensor Forward(Tensor x, RotaryEmbedding rope, AttentionPlan plan, int layer)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        Tensor projected = Linear.Apply(x, qkvWeight);
        if (Adapters?.Qkv is { } qkvDelta) projected = projected.add(qkvDelta(x), One);
        Tensor qkv = projected.view(b, t, heads + 2 * kvHeads, headDim).transpose(1, 2);
        Tensor qk = rope.Apply(qkv.narrow(1, 0, heads + kvHeads), plan.Cos, plan.SignedSin);
        Tensor query = qk.narrow(1, 0, heads);
        (Tensor keys, Tensor values) = plan.Store.Append(layer, qk.narrow(1, heads, kvHeads), qkv.narrow(1, heads + kvHeads, kvHeads));

        // [b, heads, t, d] -> [b, kv_heads, group * t, d]: row r of kv head j is query head j*group + r/t at step r%t.
        Tensor q = query.reshape(b, kvHeads, (heads / kvHeads) * t, headDim);
        Tensor attn = plan.Mask is { } mask
            ? nn.functional.scaled_dot_product_attention(q, keys, values, mask)
            : nn.functional.scaled_dot_product_attention(q, keys, values, is_casual: plan.Causal);

        Tensor merged = attn.view(b, heads, t, headDim).transpose(1, 2).reshape(b, t, heads * headDim);
        Tensor output = o_proj.Forward(merged);
        if (Adapters?.O is { } oDelta) output = output.add(oDelta(merged), One);
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The mask of a forward over t new tokens after <paramref name="start"/> cached ones, for queries laid out as
    /// in <see cref="Forward"/>; null where no mask or a plain causal one does (see <see cref="AttentionPlan"/>).
    /// </summary>
    public static Tensor? PrefillMask(long t, int group, int start, Device device) =>
        t == 1 || (start == 0 && group == 1) ? null : CausalMask(t, group, start, device);

    /// <summary>Query row r (step r % t, at position start + r % t) may see keys at positions up to its own.</summary>
    internal static Tensor CausalMask(long t, int group, int start, Device device)
    {
        Tensor queryPos = KeptScalars.Range(start, start + t, device).repeat(group);
        Tensor keyPos = KeptScalars.Range(0, start + t, device);
        return keyPos.unsqueeze(0).le(queryPos.unsqueeze(1));
    }
}
