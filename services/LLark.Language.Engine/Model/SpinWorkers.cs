namespace LLark.Language.Engine.Model;

/// <summary>
/// Splits a short job across the machine's cores with a hand-off of about a microsecond. A decode step is a
/// few dozen matrix-vector products of tens of microseconds each: the thread pool's wake-up latency would
/// cost more than the second core saves, so these workers spin between jobs for a while before sleeping.
/// </summary>
internal sealed class SpinWorkers
{
    /// <summary>How long an idle worker spins before it blocks (a decode step's gaps are far shorter).</summary>
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 2000;

    public static readonly SpinWorkers Shared = new(Math.Max(0, Math.Min(Environment.ProcessorCount, 16) - 1));

    private readonly object gate = new();
    private readonly SemaphoreSlim[] wake;
    private Action<int, int>? job;
    private int parts;
    private long generation;
    private int pending;

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

    /// <summary>Total parts a job is split into (workers plus the calling thread).</summary>
    public int Parallelism => wake.Length + 1;

    /// <summary>Runs body(part, parts) for every part, the caller taking part 0; returns when all are done.</summary>
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
            job = body;
            parts = wake.Length + 1;
            Volatile.Write(ref pending, wake.Length);
            Interlocked.Increment(ref generation);
            foreach (SemaphoreSlim s in wake)
            {
                if (s.CurrentCount == 0) s.Release();
            }
            body(0, parts);
            var spin = new SpinWait();
            while (Volatile.Read(ref pending) > 0) spin.SpinOnce(-1);
            job = null;
        }
    }

    private void Loop(int index)
    {
        long seen = 0;
        while (true)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            while (Volatile.Read(ref generation) == seen)
            {
                if (System.Diagnostics.Stopwatch.GetTimestamp() - start > SpinTicks)
                {
                    wake[index].Wait();
                    start = System.Diagnostics.Stopwatch.GetTimestamp();
                }
                else Thread.SpinWait(20);
            }
            seen = Volatile.Read(ref generation);
            job!(index + 1, parts);
            Interlocked.Decrement(ref pending);
        }
    }
}
