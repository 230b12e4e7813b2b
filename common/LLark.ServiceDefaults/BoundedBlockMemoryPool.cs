using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Connections;

namespace LLark.ServiceDefaults;

/// <summary>
/// Kestrel's connection buffers, as its own pool hands them out (pinned 4 KiB blocks, reused), but keeping at most a
/// fixed number of returned blocks: past that, a returned block is left to the GC. A model service reads each request
/// message whole before parsing it, so a few concurrent clips of tens of megabytes take tens of thousands of blocks at
/// once; with no bound the pool would keep all of them after the burst.
/// </summary>
public sealed class BoundedBlockMemoryPool(int maxRetainedBlocks) : MemoryPool<byte>
{
    public const int BlockSize = 4096;

    /// <summary>Enough for the ordinary traffic of many connections (HTTP/2 frames, small messages).</summary>
    public const long DefaultRetainedBytes = 16L << 20;

    private readonly ConcurrentQueue<Block> blocks = new();
    private int retained;

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (blocks.TryDequeue(out Block? block))
        {
            Interlocked.Decrement(ref retained);
            return block;
        }
        return new Block(this);
    }

    private void Return(Block block)
    {
        if (Interlocked.Increment(ref retained) <= maxRetainedBlocks) blocks.Enqueue(block);
        else Interlocked.Decrement(ref retained);
    }

    protected override void Dispose(bool disposing)
    {
        while (blocks.TryDequeue(out _)) Interlocked.Decrement(ref retained);
    }

    private sealed class Block : IMemoryOwner<byte>
    {
        private readonly BoundedBlockMemoryPool pool;

        public Block(BoundedBlockMemoryPool pool)
        {
            this.pool = pool;
            Memory = MemoryMarshal.CreateFromPinnedArray(GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true), 0, BlockSize);
        }

        public Memory<byte> Memory { get; }

        public void Dispose() => pool.Return(this);
    }
}

/// <summary>Gives Kestrel <see cref="BoundedBlockMemoryPool"/>s in place of its own.</summary>
public sealed class BoundedBlockMemoryPoolFactory(long retainedBytes) : IMemoryPoolFactory<byte>
{
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new BoundedBlockMemoryPool((int)Math.Min(int.MaxValue, retainedBytes / BoundedBlockMemoryPool.BlockSize));
}
