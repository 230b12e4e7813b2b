using TorchSharp;

namespace LLark.Language.Engine.Model;

/// <summary>
/// Decode steps run their matrix products on <see cref="SpinWorkers"/>, whose threads spin between jobs;
/// libtorch's own OpenMP team would fight them for the same cores inside the small ops between products.
/// Within this scope libtorch runs single-threaded; prefill (large GEMMs) keeps libtorch's threads.
/// </summary>
internal readonly struct DecodeThreadScope : IDisposable
{
    private readonly int previous;

    private DecodeThreadScope(int previous) => this.previous = previous;

    public static DecodeThreadScope Enter()
    {
        int previous = torch.get_num_threads();
        if (SpinWorkers.Shared.Parallelism > 1 && previous != 1) torch.set_num_threads(1);
        return new DecodeThreadScope(previous);
    }

    public void Dispose()
    {
        if (torch.get_num_threads() != previous) torch.set_num_threads(previous);
    }
}
