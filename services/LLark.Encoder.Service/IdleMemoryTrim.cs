using System.Runtime;

namespace LLark.Encoder.Service;

/// <summary>
/// Hands the memory of large uploads back to the system once the service has been quiet for a moment. A clip of up to
/// 64 MiB arrives as request buffers and a parsed message on the large object heap; with no allocations after it, no
/// collection comes to free them, and an idle encoder kept gigabytes resident after a burst of uploads. One aggressive,
/// compacting collection after the last large call ends costs tens of milliseconds on a service that is idle anyway.
/// </summary>
public sealed class IdleMemoryTrim : IDisposable
{
    /// <summary>Calls carrying at least this much are large enough to be worth a collection after them.</summary>
    public const long LargeBytes = 16 << 20;

    private readonly Timer timer;
    private readonly TimeSpan quiet;
    private readonly Action collect;
    private int inFlight;

    public IdleMemoryTrim() : this(TimeSpan.FromSeconds(2), Collect)
    {
    }

    /// <param name="quiet">How long after the last large call the collection runs, if no other has started.</param>
    /// <param name="collect">The collection.</param>
    public IdleMemoryTrim(TimeSpan quiet, Action collect)
    {
        this.quiet = quiet;
        this.collect = collect;
        timer = new Timer(_ => Tick());
    }

    /// <summary>Held for the life of a call that carries <paramref name="bytes"/>; only large calls count.</summary>
    public IDisposable Track(long bytes)
    {
        if (bytes < LargeBytes) return NoLease.Instance;
        Interlocked.Increment(ref inFlight);
        return new Lease(this);
    }

    private void Ended()
    {
        if (Interlocked.Decrement(ref inFlight) == 0) timer.Change(quiet, Timeout.InfiniteTimeSpan);
    }

    private void Tick()
    {
        if (Volatile.Read(ref inFlight) == 0) collect();
    }

    private static void Collect()
    {
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    public void Dispose() => timer.Dispose();

    private sealed class Lease(IdleMemoryTrim owner) : IDisposable
    {
        private int disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0) owner.Ended();
        }
    }

    private sealed class NoLease : IDisposable
    {
        public static readonly NoLease Instance = new();

        public void Dispose()
        {
        }
    }
}
