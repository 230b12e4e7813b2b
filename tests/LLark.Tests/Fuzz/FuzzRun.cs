using CsCheck;

namespace LLark.Tests.Fuzz;

/// <summary>
/// How long each fuzz property runs. The default test run: a fixed set of cases (seeds), so it is deterministic and
/// takes seconds. <c>tools/test.sh --fuzz</c> sets <c>LLARK_FUZZ_SECONDS</c>: each property then runs that many
/// seconds from random seeds, and a failure names its seed, which <c>LLARK_FUZZ_SEED</c> replays.
/// </summary>
internal static class FuzzRun
{
    /// <summary>Every fuzz test carries it, so <c>--filter Category=Fuzz</c> selects them all.</summary>
    public const string Category = "Fuzz";

    /// <summary>
    /// A case that runs longer is a hang. Generous because the machine's two cores are shared with builds and other
    /// suites; a real hang (an endless resync loop, say) never ends at all.
    /// </summary>
    public static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(20);

    public static int? Seconds =>
        int.TryParse(Environment.GetEnvironmentVariable("LLARK_FUZZ_SECONDS"), out int seconds) && seconds > 0 ? seconds : null;

    public static void Check<T>(Gen<T> gen, Action<T> property, int iterations, Func<T, string>? print = null)
    {
        foreach (var (seed, value) in Cases(gen, iterations))
        {
            try
            {
                property(value);
            }
            catch (Exception e)
            {
                throw Failed(seed, print?.Invoke(value) ?? $"{value}", e);
            }
        }
    }

    public static async Task CheckAsync<T>(Gen<T> gen, Func<T, Task> property, int iterations, Func<T, string>? print = null)
    {
        foreach (var (seed, value) in Cases(gen, iterations))
        {
            try
            {
                await property(value);
            }
            catch (Exception e)
            {
                throw Failed(seed, print?.Invoke(value) ?? $"{value}", e);
            }
        }
    }

    /// <summary>
    /// The cases, each drawn from its own seed so that any one can be replayed alone: LLARK_FUZZ_SEED's case; else
    /// random seeds for LLARK_FUZZ_SECONDS; else the default run's fixed seeds (PCG stream 1, seeds 0 to n - 1).
    /// The cases are drawn here rather than by CsCheck's Sample, whose seed argument fixes only the first iteration:
    /// the default run must be the same every time, and a failing case must replay alone from the seed it names.
    /// </summary>
    private static IEnumerable<(string Seed, T Value)> Cases<T>(Gen<T> gen, int iterations)
    {
        if (Environment.GetEnvironmentVariable("LLARK_FUZZ_SEED") is { Length: > 0 } replay)
        {
            yield return (replay, gen.Generate(PCG.Parse(replay), null, out _));
            yield break;
        }
        if (Seconds is { } seconds)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (clock.Elapsed.TotalSeconds < seconds)
                yield return Case(gen, new PCG((uint)Random.Shared.Next(), (ulong)Random.Shared.NextInt64()));
            yield break;
        }
        for (int i = 0; i < iterations; i++)
            yield return Case(gen, new PCG(1, (ulong)i));
    }

    private static (string Seed, T Value) Case<T>(Gen<T> gen, PCG pcg)
    {
        string seed = pcg.ToString();
        return (seed, gen.Generate(pcg, null, out _));
    }

    private static Xunit.Sdk.XunitException Failed(string seed, string input, Exception e) =>
        new Xunit.Sdk.XunitException($"fuzz case {seed} fails (replay: LLARK_FUZZ_SEED={seed} tools/test.sh --fuzz): {input}\n{e.Message}", e);
}

/// <summary>What one case did: its result or the exception it ended in, and what it allocated on its thread.</summary>
internal sealed record Outcome<T>(T? Result, Exception? Error, long AllocatedBytes);

/// <summary>Runs one case on its own thread, so a hang is a failure rather than a stuck suite, and its allocations can be counted.</summary>
internal static class Bounded
{
    public static Outcome<T> Run<T>(Func<T> work)
    {
        T? result = default;
        Exception? error = null;
        long allocated = 0;
        var thread = new Thread(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                result = work();
            }
            catch (Exception e)
            {
                error = e;
            }
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        })
        {
            // A hung case must not keep the test host alive after the suite ends.
            IsBackground = true,
        };
        thread.Start();
        if (!thread.Join(FuzzRun.CaseTimeout))
            throw new TimeoutException($"the case ran past {FuzzRun.CaseTimeout.TotalSeconds} s (a hang)");
        return new Outcome<T>(result, error, allocated);
    }

    public static async Task<T> RunAsync<T>(Func<CancellationToken, Task<T>> work)
    {
        using var timeout = new CancellationTokenSource(FuzzRun.CaseTimeout);
        Task<T> task = work(timeout.Token);
        if (await Task.WhenAny(task, Task.Delay(FuzzRun.CaseTimeout + TimeSpan.FromSeconds(5))) != task)
            throw new TimeoutException($"the call ran past {FuzzRun.CaseTimeout.TotalSeconds} s and ignored its cancellation (a hang)");
        if (timeout.IsCancellationRequested && !task.IsCompletedSuccessfully)
            throw new TimeoutException($"the call ran past {FuzzRun.CaseTimeout.TotalSeconds} s (a hang)");
        return await task;
    }
}
