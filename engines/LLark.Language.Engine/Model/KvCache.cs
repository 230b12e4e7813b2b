using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Language.Engine.Model;

/// <summary>
/// Keys and values of every layer for a batch of sequences that advance together, preallocated to a
/// fixed capacity so decode steps never reallocate. Layout per layer: [batch, kv_heads, capacity, head_dim].
/// </summary>
public sealed class KvCache : IKvStore, IDisposable
{
    private readonly Tensor[] keys;
    private readonly Tensor[] values;

    public KvCache(LlamaConfig config, int batchSize, int capacity, ScalarType dtype, Device? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        if (capacity > config.MaxPositionEmbeddings)
            throw new ArgumentOutOfRangeException(nameof(capacity),
                $"capacity {capacity} exceeds max_position_embeddings {config.MaxPositionEmbeddings}");
        BatchSize = batchSize;
        Capacity = capacity;
        keys = new Tensor[config.NumHiddenLayers];
        values = new Tensor[config.NumHiddenLayers];
        long[] shape = [batchSize, config.KeyValueHeads, capacity, config.HeadDim];
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i] = zeros(shape, dtype: dtype, device: device);
            values[i] = zeros(shape, dtype: dtype, device: device);
        }
    }

    /// <summary>A cache over storage someone else owns (one slot of a <see cref="BatchKvCache"/>); disposing it frees nothing.</summary>
    internal KvCache(Tensor[] keys, Tensor[] values)
    {
        this.keys = keys;
        this.values = values;
        BatchSize = (int)keys[0].shape[0];
        Capacity = (int)keys[0].shape[2];
        ownsStorage = false;
    }

    private readonly bool ownsStorage = true;

    public int BatchSize { get; }
    public int Capacity { get; }

    /// <summary>Decoder layers the cache holds keys and values for.</summary>
    internal int Layers => keys.Length;

    /// <summary>Number of positions already filled (the position of the next token).</summary>
    public int Length { get; private set; }

    /// <summary>Bytes held by the cache.</summary>
    public long Bytes => keys.Sum(k => k.NumberOfElements * k.ElementSize) * 2;

    /// <summary>
    /// Stores k and v [batch, kv_heads, T, head_dim] for layer <paramref name="layer"/> at the current length
    /// and returns every key and value so far (views, no copy).
    /// </summary>
    (Tensor Keys, Tensor Values) IKvStore.Append(int layer, Tensor k, Tensor v) => Append(layer, k, v);

    internal (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        long t = k.shape[2];
        keys[layer].narrow(2, Length, t).copy_(k);
        values[layer].narrow(2, Length, t).copy_(v);
        return (keys[layer].narrow(2, 0, Length + t), values[layer].narrow(2, 0, Length + t));
    }

    /// <summary>Layer <paramref name="layer"/>'s key and value tensors, [batch, kv_heads, capacity, head_dim].</summary>
    internal (Tensor Keys, Tensor Values) Layer(int layer) => (keys[layer], values[layer]);

    /// <summary>Called once per forward, after every layer has appended.</summary>
    internal void Advance(int tokens)
    {
        if (Length + tokens > Capacity)
            throw new InvalidOperationException($"KV cache overflow: {Length} + {tokens} > {Capacity}");
        Length += tokens;
    }

    internal void EnsureRoom(int tokens)
    {
        if (Length + tokens > Capacity)
            throw new ContextLengthException(Length + tokens, Capacity);
    }

    /// <summary>Forgets every position; the memory is reused.</summary>
    public void Reset() => Length = 0;

    /// <summary>Sets the filled length after positions were written from outside (a batched decode step).</summary>
    internal void SetLength(int length)
    {
        if (length < 0 || length > Capacity) throw new InvalidOperationException($"KV cache length {length} outside [0, {Capacity}]");
        Length = length;
    }

    /// <summary>Copies the filled positions of <paramref name="other"/> (same shape) into this cache.</summary>
    internal void CopyFrom(KvCache other)
    {
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i].narrow(2, 0, other.Length).copy_(other.keys[i].narrow(2, 0, other.Length));
            values[i].narrow(2, 0, other.Length).copy_(other.values[i].narrow(2, 0, other.Length));
        }
        Length = other.Length;
    }

    public void Dispose()
    {
        if (!ownsStorage) return;
        foreach (Tensor t in keys) t.Dispose();
        foreach (Tensor t in values) t.Dispose();
    }
}

/// <summary>A sequence would run past the context the cache (or the model) can hold.</summary>
public sealed class ContextLengthException(int needed, int capacity)
    : Exception($"sequence of {needed} tokens exceeds the context of {capacity} tokens")
{
    public int Needed { get; } = needed;
    public int Capacity { get; } = capacity;
}
