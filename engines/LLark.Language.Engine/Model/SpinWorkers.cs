namespace LLark.Language.Engine.Model;

/// <summary>
/// Splits a short job across the machine's cores with a hand-off of about a microsecond. A decode step is a
/// few dozen matrix-vector products of tens of microseconds each: the thread pool's wake-up latency would
/// cost more than the second core saves, so these workers spin between jobs for a while before sleeping.
/// </summary>
/// <remarks>
/// A job is cut into more parts than there are threads, and every thread (the caller included) claims parts until
/// none is left, so a worker the OS has descheduled (the cores are shared with request threads or other processes)
/// holds up at most the part it is running: the caller takes the parts it never claimed. A fixed part per thread
/// made every product wait for the slowest thread, which under load cost more than running on one core.
/// </remarks>
internal sealed class SpinWorkers
{
    /// <summary>How long an idle worker spins before it blocks (a decode step's gaps are far shorter).</summary>
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 2000;

    /// <summary>Parts a job is cut into per thread.</summary>
    internal const int PartsPerThread = 4;

    public static readonly SpinWorkers Shared = new(Math.Max(0, Math.Min(Environment.ProcessorCount, 16) - 1));

    private readonly object gate = new();
    private readonly SemaphoreSlim[] wake;
    private Job? job;

    /// <summary>The current job's generation (high 32 bits) and its next unclaimed part (low 32 bits).</summary>
    private long state;

    /// <summary>Parts of the current job not yet finished.</summary>
    private int unfinished;

    private sealed record Job(Action<int, int> Body, int Parts);

    private SpinWorkers(int workers)
    {
        wake = new SemaphoreSlim[workers];
        for (int i = 0; i < workers; i++)
        {
            wake[i] = new SemaphoreSlim(0);
            int index = i;
            new Thread(() => Loop(index)) { IsBackground = true, Name = $"llark-spin-{i}" }.Start();
        }
    }

    /// <summary>Threads a job runs on (workers plus the calling thread).</summary>
    public int Parallelism => wake.Length + 1;

    /// <summary>
    /// Runs body(part, parts) for every part in [0, parts), on whichever threads claim them; returns when all are
    /// done. A body must not throw.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public void Run(Action<int, int> body)
    {
        if (wake.Length == 0)
        {
            body(0, 1);
            return;
        }
        // One job at a time: concurrent callers (several models in one process) take turns.
        lock (gate)
        {
            var current = new Job(body, Parallelism * PartsPerThread);
            job = current;
            Volatile.Write(ref unfinished, current.Parts);
            // Publishing the new generation (part 0) is what lets workers claim; the job is visible before it.
            long generation = (Volatile.Read(ref state) >> 32) + 1;
            Volatile.Write(ref state, generation << 32);
            foreach (SemaphoreSlim s in wake)
            {
                if (s.CurrentCount == 0) s.Release();
            }
            while (TryClaim(generation, out Job? claimed, out int part))
            {
                claimed.Body(part, claimed.Parts);
                Interlocked.Decrement(ref unfinished);
            }
            var spin = new SpinWait();
            while (Volatile.Read(ref unfinished) > 0) spin.SpinOnce(-1);
            job = null;
        }
    }

    /// <summary>Part <paramref name="part"/> of <paramref name="parts"/> of n items: consecutive runs of equal size, the last ones shorter or empty.</summary>
    public static (int Start, int End) Split(int n, int part, int parts)
    {
        int chunk = (n + parts - 1) / parts, start = Math.Min(n, part * chunk);
        return (start, Math.Min(n, start + chunk));
    }

    /// <summary>
    /// Claims the next part of generation <paramref name="generation"/>'s job; false once every part is claimed or a
    /// later job has started. The job is read between the state and the claim, so a successful claim (the state
    /// unchanged) proves it is that generation's job: a later one is only published after every part was claimed.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private bool TryClaim(long generation, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Job? claimed, out int part)
    {
        while (true)
        {
            long s = Volatile.Read(ref state);
            claimed = Volatile.Read(ref job);
            part = (int)(s & 0xFFFF_FFFF);
            if (s >> 32 != generation || claimed is null || part >= claimed.Parts) return false;
            if (Interlocked.CompareExchange(ref state, s + 1, s) == s) return true;
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private void Loop(int index)
    {
        long seen = 0;
        while (true)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            while (Volatile.Read(ref state) >> 32 == seen)
            {
                if (System.Diagnostics.Stopwatch.GetTimestamp() - start > SpinTicks)
                {
                    wake[index].Wait();
                    start = System.Diagnostics.Stopwatch.GetTimestamp();
                }
                else Thread.SpinWait(20);
            }
            seen = Volatile.Read(ref state) >> 32;
            while (TryClaim(seen, out Job? claimed, out int part))
            {
                claimed.Body(part, claimed.Parts);
                Interlocked.Decrement(ref unfinished);
            }
        }
    }
}
