using TorchSharp;
using static TorchSharp.torch;
using LLark.Checkpoints;

namespace LLark.Language.Engine.Model;

/// <summary>
/// Keys and values for up to <see cref="Slots"/> sequences that decode together, each at its own position. Each
/// slot is also a <see cref="KvCache"/> of batch 1 (a view), which is how a sequence's prompt is prefilled alone.
/// The sequences of a decode step occupy slots 0..n-1; <see cref="Move"/> keeps them packed as sequences leave.
/// </summary>
public sealed class BatchKvCache : IDisposable
{
    private readonly Tensor[] keys;    // per layer [slots, kv_heads, capacity, head_dim]
    private readonly Tensor[] values;
    private readonly KvCache[] slots;

    public BatchKvCache(LlamaConfig config, int slotCount, int capacity, ScalarType dtype, Device? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slotCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        if (capacity > config.MaxPositionEmbeddings)
            throw new ArgumentOutOfRangeException(nameof(capacity), $"capacity {capacity} exceeds max_position_embeddings {config.MaxPositionEmbeddings}");
        Capacity = capacity;
        long[] shape = [slotCount, config.KeyValueHeads, capacity, config.HeadDim];
        keys = new Tensor[config.NumHiddenLayers];
        values = new Tensor[config.NumHiddenLayers];
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i] = zeros(shape, dtype: dtype, device: device);
            values[i] = zeros(shape, dtype: dtype, device: device);
        }
        slots = new KvCache[slotCount];
        for (int s = 0; s < slotCount; s++)
            slots[s] = new KvCache([.. keys.Select(k => k.narrow(0, s, 1))], [.. values.Select(v => v.narrow(0, s, 1))]);
    }

    public int Slots => slots.Length;

    public int Capacity { get; }

    public long Bytes => keys.Sum(k => k.NumberOfElements * k.ElementSize) * 2;

    /// <summary>Slot <paramref name="index"/> as a cache of batch 1.</summary>
    public KvCache Slot(int index) => slots[index];

    /// <summary>Layer <paramref name="layer"/>'s key and value tensors over every slot, [slots, kv_heads, capacity, head_dim].</summary>
    internal (Tensor Keys, Tensor Values) Layer(int layer) => (keys[layer], values[layer]);

    /// <summary>Moves the sequence in slot <paramref name="from"/> to slot <paramref name="to"/> (which it overwrites).</summary>
    public void Move(int from, int to)
    {
        if (from == to) return;
        slots[to].CopyFrom(slots[from]);
        slots[from].Reset();
    }

    /// <summary>The store for one decode step over slots 0..positions.Length-1, token i at position positions[i].</summary>
    internal IKvStore StepStore(int[] positions, Tensor positionIndex, Device device) => new Step(this, positions, positionIndex, device);

    public void Dispose()
    {
        foreach (Tensor t in keys) t.Dispose();
        foreach (Tensor t in values) t.Dispose();
    }

    private sealed class Step(BatchKvCache cache, int[] positions, Tensor positionIndex, Device device) : IKvStore
    {
        private readonly Tensor rows = KeptScalars.Range(0, positions.Length, device);
        private readonly int visible = positions.Max() + 1;

        public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
        {
            // k, v: [n, kv_heads, 1, d] -> written at [row, :, positions[row], :] for every row in one op.
            int n = positions.Length;
            TensorIndex[] at = [TensorIndex.Tensor(rows), TensorIndex.Colon, TensorIndex.Tensor(positionIndex)];
            cache.keys[layer].index_put_(k.squeeze(2), at);
            cache.values[layer].index_put_(v.squeeze(2), at);
            return (cache.keys[layer].narrow(0, 0, n).narrow(2, 0, visible), cache.values[layer].narrow(0, 0, n).narrow(2, 0, visible));
        }
    }
}
