namespace LLark.Encoder.Service.Caching;

/// <summary>
/// Least-recently-used entries, bounded by the bytes of their frames. Entries are immutable, so evicting one only
/// drops this tier's reference: a request streaming it keeps its own and finishes undisturbed.
/// </summary>
public sealed class MemoryTier(long capacityBytes)
{
    private readonly Dictionary<string, LinkedListNode<StoredEmbedding>> index = new(StringComparer.Ordinal);
    private readonly LinkedList<StoredEmbedding> order = new();
    private readonly Lock gate = new();
    private long bytes;

    public long CapacityBytes { get; } = capacityBytes;

    public long Bytes
    {
        get { lock (gate) return bytes; }
    }

    public int Count
    {
        get { lock (gate) return index.Count; }
    }

    public StoredEmbedding? Get(string id)
    {
        lock (gate)
        {
            if (!index.TryGetValue(id, out var node)) return null;
            order.Remove(node);
            order.AddFirst(node);
            return node.Value;
        }
    }

    /// <summary>Adds or replaces; evicts from the cold end until the entry fits. An entry larger than the whole tier is not kept.</summary>
    public void Put(StoredEmbedding entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.Bytes > CapacityBytes) return;
        lock (gate)
        {
            RemoveLocked(entry.Id);
            while (bytes + entry.Bytes > CapacityBytes && order.Last is { } cold) RemoveLocked(cold.Value.Id);
            index[entry.Id] = order.AddFirst(entry);
            bytes += entry.Bytes;
        }
    }

    public bool Remove(string id)
    {
        lock (gate) return RemoveLocked(id);
    }

    private bool RemoveLocked(string id)
    {
        if (!index.Remove(id, out var node)) return false;
        order.Remove(node);
        bytes -= node.Value.Bytes;
        return true;
    }
}
