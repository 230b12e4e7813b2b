using TorchSharp;

namespace LLark.Language.Engine.Model;

/// <summary>
/// libtorch intra-op threads for the calling thread while in scope (OpenMP keeps the count per calling thread). The
/// serving process runs its small libtorch work (prompt building on request threads, prefill on the scheduler) at one
/// thread by default: each caller's OpenMP team of all cores would oversubscribe a small machine beside the decode
/// loop's own workers, and a team member that loses its core stalls the whole op, so a short prefill can take ten
/// times as long while other requests are being parsed.
/// </summary>
public readonly struct TorchThreadScope : IDisposable
{
    private readonly int previous;

    private TorchThreadScope(int previous) => this.previous = previous;

    /// <summary>Runs libtorch on this thread with <paramref name="threads"/> threads until disposed; 0 leaves it as it is.</summary>
    public static TorchThreadScope Use(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        int previous = torch.get_num_threads();
        if (threads > 0 && threads != previous) torch.set_num_threads(threads);
        return new TorchThreadScope(previous);
    }

    /// <summary>
    /// The scope of a decode step: decode steps run their matrix products on <see cref="SpinWorkers"/>, whose threads
    /// spin between jobs, and libtorch's own OpenMP team would fight them for the same cores inside the small ops between
    /// products, so libtorch runs single-threaded (unless there are no workers); prefill (large GEMMs) keeps its threads.
    /// </summary>
    internal static TorchThreadScope ForDecode() => Use(SpinWorkers.Shared.Parallelism > 1 ? 1 : 0);

    public void Dispose()
    {
        if (previous > 0 && torch.get_num_threads() != previous) torch.set_num_threads(previous);
    }
}
