using LLark.Encoder.Service;

namespace LLark.Tests.Encoder.Service;

/// <summary>The collection after large uploads: once the last one has ended and none has started since, never during one.</summary>
public sealed class IdleMemoryTrimTests
{
    [Fact]
    public async Task ACollectionFollowsTheLastLargeCallAndNoneRunsWhileOneIsInFlight()
    {
        int collections = 0;
        using var trim = new IdleMemoryTrim(TimeSpan.FromMilliseconds(50), () => Interlocked.Increment(ref collections));

        trim.Track(IdleMemoryTrim.LargeBytes - 1).Dispose();
        IDisposable first = trim.Track(IdleMemoryTrim.LargeBytes);
        IDisposable second = trim.Track(64 << 20);
        first.Dispose();
        await Task.Delay(300);
        Assert.Equal(0, Volatile.Read(ref collections));

        second.Dispose();
        second.Dispose();
        for (int i = 0; i < 200 && Volatile.Read(ref collections) == 0; i++) await Task.Delay(25);
        Assert.Equal(1, Volatile.Read(ref collections));
    }
}
