using CsCheck;

namespace LLark.Tests.Fuzz;

/// <summary>
/// How long each fuzz property runs. The default test run: a few iterations from a fixed seed, so it is deterministic
/// and takes seconds. <c>tools/test.sh --fuzz</c> sets <c>LLARK_FUZZ_SECONDS</c>: each property then runs that many
/// seconds from a random seed, and a failure names the seed (CsCheck's message) to replay it with.
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

    // Any fixed seed does; this one is PCG stream 1, state 2026, as CsCheck writes seeds.
    private const string FixedSeed = "0000001KQ00ZrK";

    public static int? Seconds =>
        int.TryParse(Environment.GetEnvironmentVariable("LLARK_FUZZ_SECONDS"), out int seconds) && seconds > 0 ? seconds : null;

    public static void Check<T>(Gen<T> gen, Action<T> property, int iterations, Func<T, string>? print = null)
    {
        if (Seconds is { } seconds)
            gen.Sample(property, seed: Environment.GetEnvironmentVariable("LLARK_FUZZ_SEED"), time: seconds, threads: 1, print: print);
        else
            gen.Sample(property, seed: FixedSeed, iter: iterations, threads: 1, print: print);
    }

    public static Task CheckAsync<T>(Gen<T> gen, Func<T, Task> property, int iterations, Func<T, string>? print = null) =>
        Seconds is { } seconds
            ? gen.SampleAsync(property, seed: Environment.GetEnvironmentVariable("LLARK_FUZZ_SEED"), time: seconds, threads: 1, print: print)
            : gen.SampleAsync(property, seed: FixedSeed, iter: iterations, threads: 1, print: print);
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
        }, maxStackSize: 16 << 20)
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
