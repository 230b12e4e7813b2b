using System.Buffers;
using LLark.ServiceDefaults;
using LLark.Tests.Language.Service;
using LLark.Tests.TestSupport;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;

namespace LLark.Tests.ServiceDefaults;

/// <summary>The connection buffers' pool: blocks are reused, and no more than the bound are kept after a burst.</summary>
public sealed class BoundedBlockMemoryPoolTests
{
    [Fact]
    public void AReturnedBlockIsReusedAndABurstKeepsOnlyTheBound()
    {
        using var pool = new BoundedBlockMemoryPool(maxRetainedBlocks: 3);
        IMemoryOwner<byte> first = pool.Rent();
        Assert.Equal(BoundedBlockMemoryPool.BlockSize, first.Memory.Length);
        Memory<byte> memory = first.Memory;
        first.Dispose();
        Assert.True(pool.Rent().Memory.Span == memory.Span, "the returned block is handed out again");

        // Ten blocks out and back: three are kept, so of the next ten rented, three are blocks of the burst.
        IMemoryOwner<byte>[] burst = [.. Enumerable.Range(0, 10).Select(_ => pool.Rent(100))];
        foreach (IMemoryOwner<byte> block in burst) block.Dispose();
        IMemoryOwner<byte>[] again = [.. Enumerable.Range(0, 10).Select(_ => pool.Rent())];
        Assert.Equal(3, again.Count(a => burst.Any(b => b.Memory.Span == a.Memory.Span)));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(BoundedBlockMemoryPool.BlockSize + 1));
    }

    [Fact]
    public async Task TheModelServicesGiveKestrelTheBoundedPool()
    {
        await using LoopbackHost language = await LoopbackHost.StartAsync(global::LLark.Language.Service.LanguageServiceHost.Build([], LoopbackHost.Settings(
            new Dictionary<string, string?> { ["LLark:Language:ModelPath"] = TinyLLark.Directory })));
        var factory = language.App.Services.GetRequiredService<IMemoryPoolFactory<byte>>();
        Assert.IsType<BoundedBlockMemoryPoolFactory>(factory);
        using MemoryPool<byte> pool = factory.Create();
        Assert.IsType<BoundedBlockMemoryPool>(pool);
    }
}
