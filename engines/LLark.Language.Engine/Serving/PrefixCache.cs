using System.Buffers.Binary;
using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using LLark.Language.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Language.Engine.Serving;

/// <summary>
/// Keys and values of every layer for prompt prefixes already computed, in blocks of <see cref="BlockTokens"/>
/// positions, so that a prompt starting with a cached prefix prefills only the rest. Each block is found by a digest
/// chained over the prompt's scope and every position before and in it (as vLLM's automatic prefix caching does), and
/// is served only after its parent block and its own positions compare equal, so a digest collision cannot serve
/// another prompt's state. After the last whole block that matches, the child block sharing the longest run of
/// leading positions with the prompt gives those positions too (as a radix tree would), so a question about a cached
/// clip prefills only its own new tokens, not up to a block more. A prefix's last, partial block is kept as a tail: a
/// leaf that only that partial match finds, dropped once a whole block or a longer tail covers it, so that a follow-up
/// resending an answer prefills its new turn only. Bounded by <see cref="BudgetBytes"/>, least recently
/// used blocks evicted first. Thread-safe; one cache may serve several schedulers, whatever their models: the scope
/// keeps them apart.
/// </summary>
public sealed class PrefixCache : IDisposable
{
    public const int DefaultBlockTokens = 16;

    private readonly object gate = new();
    private readonly Dictionary<UInt128, Block> blocks = [];
    // The blocks that follow each block (by its digest) or start a prompt (by the scope): where a partial match is looked for.
    private readonly Dictionary<UInt128, List<Block>> children = [];
    // Most recently used first. Touching a chain moves its root to the front last, so a block is always used at least as
    // recently as its parent, eviction takes descendants before their ancestors, and no cached block is unreachable.
    private readonly LinkedList<Block> recency = new();
    // Block memory by layout (one per model the cache serves).
    private readonly Dictionary<string, BlockArena> arenas = [];
    private readonly Meter meter = new(BatchScheduler.MeterName);
    private long hits, misses, evictions, savedPositions, bytesHeld, bytesReserved;
    private long epoch;

    public PrefixCache(long budgetBytes, int blockTokens = DefaultBlockTokens)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(budgetBytes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockTokens, 1);
        BudgetBytes = budgetBytes;
        BlockTokens = blockTokens;
        meter.CreateObservableCounter("llark.language.prefix_cache.hits", () => Hits, "{request}", "Prompts that started with a cached prefix");
        meter.CreateObservableCounter("llark.language.prefix_cache.misses", () => Misses, "{request}", "Prompts that found no cached prefix");
        meter.CreateObservableCounter("llark.language.prefix_cache.evictions", () => Evictions, "{block}", "Blocks evicted to stay within the budget");
        meter.CreateObservableCounter("llark.language.prefix_cache.saved_positions", () => SavedPositions, "{position}",
            "Prompt positions taken from the cache instead of prefilled");
        meter.CreateObservableGauge("llark.language.prefix_cache.bytes", () => BytesHeld, "By", "Bytes of keys and values the cache holds");
        meter.CreateObservableGauge("llark.language.prefix_cache.reserved_bytes", () => BytesReserved, "By",
            "Bytes of memory the cache has allocated for blocks, held or free for reuse");
    }

    public long BudgetBytes { get; }

    /// <summary>Positions per block: a prefix is reused in whole blocks, so up to this many minus one are prefilled again.</summary>
    public int BlockTokens { get; }

    public long Hits => Interlocked.Read(ref hits);
    public long Misses => Interlocked.Read(ref misses);
    public long Evictions => Interlocked.Read(ref evictions);
    public long SavedPositions => Interlocked.Read(ref savedPositions);
    public long BytesHeld => Interlocked.Read(ref bytesHeld);

    /// <summary>Memory allocated for blocks: those held and those free for reuse. Within the budget when the cache serves one model.</summary>
    public long BytesReserved => Interlocked.Read(ref bytesReserved);

    /// <summary>
    /// Copies the longest cached prefix of <paramref name="key"/>, at most <paramref name="limit"/> positions, into the
    /// empty <paramref name="slot"/> and sets its length; returns the positions restored (0 on a miss). Whole blocks,
    /// then the leading positions of the child block that shares the most of them with the prompt. The slot's memory
    /// already holds the first <paramref name="held"/> positions of the prompt (left by the sequence before), which are
    /// not copied, and are restored even where the cache no longer has them.
    /// </summary>
    internal int Restore(PromptKey key, int limit, KvCache slot, int held = 0)
    {
        if (slot.Length != 0) throw new InvalidOperationException("the prefix goes into an empty slot");
        limit = Math.Min(Math.Min(limit, key.Positions.Count), slot.Capacity);
        held = Math.Clamp(held, 0, limit);
        lock (gate)
        {
            var chain = new List<Block>();
            UInt128 digest = key.Scope;
            for (int start = 0; start + BlockTokens <= limit; start += BlockTokens)
            {
                digest = Chain(digest, key.Positions, start);
                if (!blocks.TryGetValue(digest, out Block? block) || !block.Follows(key, chain.Count > 0 ? chain[^1] : null, start)
                    || !block.Fits(slot)) break;
                chain.Add(block);
            }
            int whole = chain.Count * BlockTokens;
            (Block? partial, int shared) = LongestChild(key, chain.Count > 0 ? chain[^1] : null, whole, limit - whole, slot);
            if (whole + shared + held == 0)
            {
                Interlocked.Increment(ref misses);
                return 0;
            }
            int restored = Math.Max(held, whole + shared);
            if (partial is not null) chain.Add(partial);
            Block.Copy(chain, held, whole + shared, slot, intoSlot: true);
            slot.SetLength(restored);
            Touch(chain);
            Interlocked.Increment(ref hits);
            Interlocked.Add(ref savedPositions, restored);
            return restored;
        }
    }

    /// <summary>The child of <paramref name="parent"/> whose leading positions match the most of the prompt's from <paramref name="start"/> (at most <paramref name="room"/>).</summary>
    private (Block? Block, int Shared) LongestChild(PromptKey key, Block? parent, int start, int room, KvCache slot)
    {
        if (room <= 0 || !children.TryGetValue(parent?.Digest ?? key.Scope, out List<Block>? candidates)) return (null, 0);
        Block? best = null;
        int longest = 0;
        foreach (Block child in candidates)
        {
            if (child.Scope != key.Scope || !ReferenceEquals(child.Parent, parent) || !child.Fits(slot)) continue;
            int n = child.SharedWith(key.Positions, start, room);
            if (n > longest) (best, longest) = (child, n);
        }
        return (best, longest);
    }

    /// <summary>
    /// Keeps <paramref name="slot"/>'s filled positions that <paramref name="key"/> names (a prompt just prefilled, or a
    /// finished one with its answer): its whole blocks, then the positions after them as a tail, evicting the least
    /// recently used blocks to make room. Blocks already cached are only marked used.
    /// </summary>
    internal void Insert(PromptKey key, KvCache slot)
    {
        int length = Math.Min(key.Positions.Count, slot.Length);
        if (length < 1) return;
        lock (gate)
        {
            long current = ++epoch;
            var chain = new List<Block>();
            UInt128 digest = key.Scope;
            var captured = new List<Block>();
            BlockArena arena = ArenaFor(slot);
            int start = 0;
            bool whole = true;
            for (; start + BlockTokens <= length; start += BlockTokens)
            {
                digest = Chain(digest, key.Positions, start);
                Block? parent = chain.Count > 0 ? chain[^1] : null;
                if (blocks.TryGetValue(digest, out Block? block))
                {
                    whole = block.Follows(key, parent, start);
                }
                else
                {
                    block = Capture(key, parent, start, BlockTokens, digest, arena, current, captured);
                    whole = block is not null;
                }
                if (!whole) break;
                block!.Epoch = current;
                chain.Add(block);
            }
            if (whole && start < length && KeepTail(key, chain.Count > 0 ? chain[^1] : null, start, length - start, arena, current, captured) is { } tail)
                chain.Add(tail);
            try
            {
                Block.Copy(captured, 0, length, slot, intoSlot: false);
            }
            catch
            {
                // Never leave a block whose state was not written where a lookup can find it.
                foreach (Block block in captured) Evict(block);
                throw;
            }
            Touch(chain);
        }
    }

    /// <summary>
    /// Keeps the <paramref name="count"/> positions after the whole blocks as a tail under <paramref name="parent"/>,
    /// unless a cached child already holds them; tails they extend are dropped. Returns the block that holds them.
    /// </summary>
    private Block? KeepTail(PromptKey key, Block? parent, int start, int count, BlockArena arena, long current, List<Block> captured)
    {
        UInt128 under = parent?.Digest ?? key.Scope;
        if (children.TryGetValue(under, out List<Block>? siblings))
        {
            foreach (Block child in siblings.ToList())
            {
                if (child.Scope != key.Scope || !ReferenceEquals(child.Parent, parent)) continue;
                int shared = child.SharedWith(key.Positions, start, count);
                if (shared == count)
                {
                    child.Epoch = current;
                    return child;
                }
                if (child.IsTail && shared == child.Positions.Length) Evict(child);
            }
        }
        // A tail is never a parent nor in the digest lookup, so it needs no digest of its own.
        Block? tail = Capture(key, parent, start, count, UInt128.Zero, arena, current, captured);
        if (tail is not null) tail.Epoch = current;
        return tail;
    }

    /// <summary>A new block for <paramref name="count"/> positions from <paramref name="start"/>, in the cache and in <paramref name="captured"/>, its state still to be copied.</summary>
    private Block? Capture(PromptKey key, Block? parent, int start, int count, UInt128 digest, BlockArena arena, long current, List<Block> captured)
    {
        // A tail takes a whole block's memory, and is charged for it.
        long bytes = arena.BlockBytes;
        if (bytes > BudgetBytes) return null;
        while (bytesHeld + bytes > BudgetBytes)
        {
            Block victim = recency.Last!.Value;
            // The chain being inserted is not evicted for its own tail.
            if (victim.Epoch == current) return null;
            Evict(victim);
        }
        var positions = new PromptPosition[count];
        for (int i = 0; i < count; i++) positions[i] = key.Positions[start + i];
        var block = new Block(digest, key.Scope, parent, positions, start, Take(arena)) { Bytes = bytes, IsTail = count < BlockTokens };
        block.Node = recency.AddFirst(block);
        UInt128 under = parent?.Digest ?? key.Scope;
        if (!block.IsTail)
        {
            blocks.Add(digest, block);
            // A whole block supersedes the tails it extends.
            if (children.TryGetValue(under, out List<Block>? tails))
            {
                foreach (Block stale in tails.Where(t => t.IsTail && t.Scope == key.Scope && t.SharedWith(key.Positions, start, count) == t.Positions.Length).ToList())
                    Evict(stale);
            }
        }
        if (!children.TryGetValue(under, out List<Block>? siblings)) children[under] = siblings = [];
        siblings.Add(block);
        Interlocked.Add(ref bytesHeld, bytes);
        captured.Add(block);
        return block;
    }

    private void Touch(List<Block> chain)
    {
        for (int i = chain.Count - 1; i >= 0; i--)
        {
            recency.Remove(chain[i].Node!);
            recency.AddFirst(chain[i].Node!);
        }
    }

    private void Evict(Block block)
    {
        recency.Remove(block.Node!);
        if (!block.IsTail) blocks.Remove(block.Digest);
        UInt128 under = block.Parent?.Digest ?? block.Scope;
        if (children.TryGetValue(under, out List<Block>? siblings) && siblings.Remove(block) && siblings.Count == 0) children.Remove(under);
        if (block.Memory.Release()) Interlocked.Add(ref bytesReserved, -block.Bytes);
        Interlocked.Add(ref bytesHeld, -block.Bytes);
        Interlocked.Increment(ref evictions);
    }

    private BlockArena ArenaFor(KvCache slot)
    {
        Tensor keys = slot.Layer(0).Keys;
        long[] shape = [slot.Layers, 2, keys.shape[1], BlockTokens, keys.shape[3]];
        string layout = $"{string.Join('x', shape)} {keys.dtype} {keys.device}";
        if (!arenas.TryGetValue(layout, out BlockArena? arena)) arenas[layout] = arena = new BlockArena(shape, keys.dtype, keys.ElementSize, keys.device);
        return arena;
    }

    /// <summary>
    /// Memory for one block: a free one of <paramref name="arena"/>'s, else a new chunk of it as far as all arenas stay
    /// within the budget (after letting go of other arenas' empty chunks), else a tensor of its own. The last happens only
    /// when blocks of several layouts share the budget.
    /// </summary>
    private BlockMemory Take(BlockArena arena)
    {
        if (arena.TryTake() is { } free) return free;
        if (BudgetBytes - bytesReserved < arena.BlockBytes)
        {
            foreach (BlockArena other in arenas.Values) Interlocked.Add(ref bytesReserved, -other.ReleaseEmptyChunks());
        }
        long room = BudgetBytes - bytesReserved;
        (BlockMemory memory, long grown) = room >= arena.BlockBytes ? arena.Grow(room) : (BlockMemory.Own(arena), arena.BlockBytes);
        Interlocked.Add(ref bytesReserved, grown);
        return memory;
    }

    /// <summary>The digest of the block at <paramref name="start"/>: SHA-256 of its parent's digest and its positions.</summary>
    private UInt128 Chain(UInt128 parent, IReadOnlyList<PromptPosition> positions, int start)
    {
        const int PositionBytes = 20;
        Span<byte> buffer = new byte[16 + BlockTokens * PositionBytes];
        BinaryPrimitives.WriteUInt128LittleEndian(buffer, parent);
        for (int i = 0; i < BlockTokens; i++)
        {
            Span<byte> at = buffer.Slice(16 + i * PositionBytes, PositionBytes);
            BinaryPrimitives.WriteUInt128LittleEndian(at, positions[start + i].Content);
            BinaryPrimitives.WriteInt32LittleEndian(at[16..], positions[start + i].Index);
        }
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(buffer, hash);
        return PromptKey.Truncate(hash);
    }

    public void Dispose()
    {
        lock (gate)
        {
            foreach (Block block in recency) block.Memory.Release();
            foreach (BlockArena arena in arenas.Values) arena.Dispose();
            arenas.Clear();
            Interlocked.Exchange(ref bytesReserved, 0);
            blocks.Clear();
            children.Clear();
            recency.Clear();
            Interlocked.Exchange(ref bytesHeld, 0);
        }
        meter.Dispose();
    }

    private sealed class Block
    {
        /// <summary>A block of <paramref name="positions"/> from <paramref name="start"/> in <paramref name="memory"/>, its state not yet written (<see cref="Copy"/>).</summary>
        public Block(UInt128 digest, UInt128 scope, Block? parent, PromptPosition[] positions, int start, BlockMemory memory)
        {
            Digest = digest;
            Scope = scope;
            Parent = parent;
            Positions = positions;
            Start = start;
            Memory = memory;
        }

        public UInt128 Digest { get; }
        public UInt128 Scope { get; }
        public Block? Parent { get; }
        public PromptPosition[] Positions { get; }

        /// <summary>The prompt position of the block's first.</summary>
        public int Start { get; }

        public BlockMemory Memory { get; }

        /// <summary>[layers, 2 (keys, values), kv_heads, block tokens, head_dim]; the first <see cref="Positions"/> positions are the block's.</summary>
        public Tensor Kv => Memory.Kv;

        public long Bytes { get; init; }

        /// <summary>Fewer positions than a whole block: the end of a prefix, found only by a partial match, never a parent.</summary>
        public bool IsTail { get; init; }

        public long Epoch { get; set; }
        public LinkedListNode<Block>? Node { get; set; }

        /// <summary>Whether this block is the one <paramref name="key"/> has at <paramref name="start"/> after <paramref name="parent"/>.</summary>
        public bool Follows(PromptKey key, Block? parent, int start)
        {
            if (Scope != key.Scope || !ReferenceEquals(Parent, parent)) return false;
            for (int i = 0; i < Positions.Length; i++)
            {
                if (Positions[i] != key.Positions[start + i]) return false;
            }
            return true;
        }

        /// <summary>How many of this block's leading positions equal <paramref name="positions"/> from <paramref name="start"/>, at most <paramref name="most"/>.</summary>
        public int SharedWith(IReadOnlyList<PromptPosition> positions, int start, int most) =>
            PromptKey.Shared(Positions, positions, start, Math.Min(most, Positions.Length));

        /// <summary>Whether the block's state has the slot's layout (it always has, within one scope; this is cheap insurance).</summary>
        public bool Fits(KvCache slot)
        {
            Tensor keys = slot.Layer(0).Keys;
            return Kv.shape[0] == slot.Layers && Kv.shape[2] == keys.shape[1] && Kv.shape[4] == keys.shape[3] && Kv.dtype == keys.dtype
                && Kv.device_type == keys.device_type && Kv.device_index == keys.device_index;
        }

        /// <summary>
        /// Positions [<paramref name="from"/>, <paramref name="to"/>) that <paramref name="blocks"/> hold, between each
        /// block and the same positions of <paramref name="slot"/>: into the slot (a restore) or out of it (a capture).
        /// </summary>
        public static void Copy(IReadOnlyList<Block> blocks, int from, int to, KvCache slot, bool intoSlot)
        {
            if (from >= to || blocks.Count == 0 || CopyInMemory(blocks, from, to, slot, intoSlot)) return;
            using var scope = NewDisposeScope();
            foreach (Block block in blocks)
            {
                int at = Math.Max(from, block.Start), end = Math.Min(to, block.Start + block.Positions.Length);
                if (at >= end) continue;
                Tensor kv = block.Kv.narrow(3, at - block.Start, end - at);
                for (int layer = 0; layer < slot.Layers; layer++)
                {
                    (Tensor k, Tensor v) = slot.Layer(layer);
                    (Tensor sk, Tensor sv) = (k.select(0, 0).narrow(1, at, end - at), v.select(0, 0).narrow(1, at, end - at));
                    (Tensor bk, Tensor bv) = (kv.select(0, layer).select(0, 0), kv.select(0, layer).select(0, 1));
                    if (intoSlot)
                    {
                        sk.copy_(bk);
                        sv.copy_(bv);
                    }
                    else
                    {
                        bk.copy_(sk);
                        bv.copy_(sv);
                    }
                }
            }
        }

        /// <summary>
        /// The copy as plain memory moves, one run of positions per block, layer, keys or values, and head, spread over
        /// the decode step's workers, when every tensor is a contiguous CPU tensor: a copy is some ten libtorch calls a
        /// block and layer otherwise, which at a small model costs more than the copying.
        /// </summary>
        private static unsafe bool CopyInMemory(IReadOnlyList<Block> blocks, int from, int to, KvCache slot, bool intoSlot)
        {
            Tensor first = slot.Layer(0).Keys;
            if (first.device_type != DeviceType.CPU || blocks.Any(b => b.Kv.device_type != DeviceType.CPU || !b.Kv.is_contiguous())) return false;
            var slotData = new nint[slot.Layers * 2];
            for (int layer = 0; layer < slot.Layers; layer++)
            {
                (Tensor k, Tensor v) = slot.Layer(layer);
                if (!k.is_contiguous() || !v.is_contiguous()) return false;
                (slotData[2 * layer], slotData[2 * layer + 1]) = ((nint)NativeTensor.DataPointer(k), (nint)NativeTensor.DataPointer(v));
            }
            nint[] blockData = [.. blocks.Select(b => (nint)NativeTensor.DataPointer(b.Kv))];
            int[] starts = [.. blocks.Select(b => b.Start)], sizes = [.. blocks.Select(b => b.Positions.Length)];
            int stride = (int)blocks[0].Kv.shape[3];
            int heads = (int)first.shape[1], capacity = (int)first.shape[2], headDim = (int)first.shape[3];
            long element = first.ElementSize;
            SpinWorkers.Shared.Run((part, parts) =>
            {
                (int firstItem, int endItem) = SpinWorkers.Split(slotData.Length * heads, part, parts);
                for (int item = firstItem; item < endItem; item++)
                {
                    int kv = item / heads, h = item % heads;
                    byte* head = (byte*)slotData[kv] + (long)h * capacity * headDim * element;
                    for (int b = 0; b < starts.Length; b++)
                    {
                        int at = Math.Max(from, starts[b]), end = Math.Min(to, starts[b] + sizes[b]);
                        if (at >= end) continue;
                        long run = (long)(end - at) * headDim * element;
                        byte* inBlock = (byte*)blockData[b] + (((long)kv * heads + h) * stride + at - starts[b]) * headDim * element;
                        byte* inSlot = head + (long)at * headDim * element;
                        if (intoSlot) Buffer.MemoryCopy(inBlock, inSlot, run, run);
                        else Buffer.MemoryCopy(inSlot, inBlock, run, run);
                    }
                }
            });
            return true;
        }
    }

    /// <summary>Where one block's state lives: a slice of an arena's chunk, or a tensor of its own.</summary>
    private sealed class BlockMemory(Tensor kv, BlockArena.Chunk? chunk, int index)
    {
        /// <summary>[layers, 2, kv_heads, block tokens, head_dim], contiguous.</summary>
        public Tensor Kv { get; } = kv;

        public static BlockMemory Own(BlockArena arena) =>
            new(empty(arena.Shape, dtype: arena.DType, device: arena.Device).DetachFromDisposeScope(), null, -1);

        /// <summary>Gives the memory back to its chunk's free list, or to the allocator when it is its own (then true).</summary>
        public bool Release()
        {
            Kv.Dispose();
            chunk?.Free.Push(index);
            return chunk is null;
        }
    }

    /// <summary>
    /// Block memory of one layout, allocated a chunk of several blocks at a time. A chunk is at least 8 MiB, advised onto
    /// transparent huge pages (which cover at least three quarters of it, wherever the allocator puts it): a new clip's
    /// prompt of some forty blocks is then a handful of page faults, where forty small allocations of fresh memory were
    /// thousands, paid on the scheduler thread before the running batch's next step. Evicted blocks' memory is reused;
    /// a chunk goes back only when it is empty and the budget needs the room for another layout.
    /// </summary>
    private sealed unsafe class BlockArena(long[] shape, ScalarType dtype, long elementSize, Device device) : IDisposable
    {
        private const long ChunkBytes = 8L << 20;
        private readonly List<Chunk> chunks = [];

        public long[] Shape { get; } = shape;
        public ScalarType DType { get; } = dtype;
        public Device Device { get; } = device;
        public long BlockBytes { get; } = shape.Aggregate(elementSize, (a, b) => a * b);

        public BlockMemory? TryTake()
        {
            foreach (Chunk chunk in chunks)
            {
                if (chunk.Free.TryPop(out int index)) return new BlockMemory(chunk.Memory[index].DetachFromDisposeScope(), chunk, index);
            }
            return null;
        }

        /// <summary>A new chunk of at most <paramref name="room"/> bytes (at least one block): its first block, and the chunk's bytes.</summary>
        public (BlockMemory First, long Bytes) Grow(long room)
        {
            int count = (int)Math.Max(1, Math.Min((ChunkBytes + BlockBytes - 1) / BlockBytes, room / BlockBytes));
            Tensor memory = empty([count, .. Shape], dtype: DType, device: Device).DetachFromDisposeScope();
            if (Device.type == DeviceType.CPU) HugePages.Advise((void*)NativeTensor.DataPointer(memory), count * BlockBytes);
            var chunk = new Chunk(memory);
            for (int i = count - 1; i >= 0; i--) chunk.Free.Push(i);
            chunks.Add(chunk);
            return (TryTake()!, count * BlockBytes);
        }

        /// <summary>Frees the chunks none of whose blocks is in use; returns their bytes.</summary>
        public long ReleaseEmptyChunks()
        {
            long released = 0;
            foreach (Chunk chunk in chunks.Where(c => c.Free.Count == c.Blocks).ToList())
            {
                chunk.Memory.Dispose();
                chunks.Remove(chunk);
                released += chunk.Blocks * BlockBytes;
            }
            return released;
        }

        public void Dispose()
        {
            foreach (Chunk chunk in chunks) chunk.Memory.Dispose();
            chunks.Clear();
        }

        public sealed class Chunk(Tensor memory)
        {
            public Tensor Memory { get; } = memory;
            public int Blocks { get; } = (int)memory.shape[0];
            public Stack<int> Free { get; } = new();
        }
    }
}
