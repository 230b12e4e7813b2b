using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Language.Engine.Model;

/// <summary>Where one forward's keys and values go and which of them each query may see.</summary>
internal interface IKvStore
{
    /// <summary>
    /// Stores k and v [batch, kv_heads, T, head_dim] of layer <paramref name="layer"/> and returns every key and
    /// value the queries attend over (views, no copy).
    /// </summary>
    (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v);
}

/// <summary>
/// Everything one forward shares across layers: the rotary tables for its positions, the cache it writes, and
/// the attention mask (null with <see cref="Causal"/> for a plain causal prefill, null alone for no mask).
/// </summary>
internal sealed record AttentionPlan(Tensor Cos, Tensor SignedSin, IKvStore Store, Tensor? Mask, bool Causal);
