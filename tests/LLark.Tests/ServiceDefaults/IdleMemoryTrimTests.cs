using LLark.ServiceDefaults;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace LLark.Tests.ServiceDefaults;

/// <summary>The trim after large allocations: only when idle, only past the threshold, and never when turned off.</summary>
public sealed class IdleMemoryTrimTests
{
    private long allocated;
    private int collections;

    private IdleMemoryTrim Trim(long threshold) =>
        new(Options.Create(new MemoryOptions { IdleTrimAfterBytes = threshold }), NullLogger<IdleMemoryTrim>.Instance, () => allocated, () => collections++);

    [Fact]
    public void AnIdleServiceTrimsOnceItHasAllocatedTheThresholdSinceTheLastTrim()
    {
        IdleMemoryTrim trim = Trim(100);
        allocated = 99;
        Assert.False(trim.TrimIfIdle());
        allocated = 100;
        Assert.True(trim.TrimIfIdle());
        Assert.False(trim.TrimIfIdle());
        allocated = 150;
        Assert.False(trim.TrimIfIdle());
        allocated = 200;
        Assert.True(trim.TrimIfIdle());
        Assert.Equal(2, collections);
    }

    [Fact]
    public async Task ARequestInFlightHoldsTheTrimBackUntilItEnds()
    {
        IdleMemoryTrim trim = Trim(100);
        allocated = 1_000;
        var release = new TaskCompletionSource();
        Task request = trim.Track(new DefaultHttpContext(), _ => release.Task);
        Assert.False(trim.TrimIfIdle());
        release.SetResult();
        await request;
        Assert.True(trim.TrimIfIdle());
        // A request that fails still ends its count.
        await Assert.ThrowsAsync<InvalidOperationException>(() => trim.Track(new DefaultHttpContext(), _ => throw new InvalidOperationException()));
        allocated = 2_000;
        Assert.True(trim.TrimIfIdle());
    }

    [Fact]
    public void ZeroTurnsItOff()
    {
        IdleMemoryTrim trim = Trim(0);
        allocated = long.MaxValue / 2;
        Assert.False(trim.TrimIfIdle());
        Assert.Equal(0, collections);
    }
}
