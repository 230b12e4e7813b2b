using System.Runtime.InteropServices;

namespace LLark.Checkpoints;

/// <summary>
/// Settings that libtorch and the MKL inside it read once, from the C library's environment, the first time they
/// allocate or compute. Each is a default: a value already in the environment wins, so an operator can turn it off.
/// They take effect only when requested before the process's first tensor op, so callers request them from static
/// constructors of the types that start that work.
/// </summary>
public static partial class LibTorchEnvironment
{
    // .NET keeps its own copy of the environment on Unix; libtorch and MKL read the C library's.
    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    /// <summary>
    /// Backs large CPU allocations with transparent huge pages (c10's THP_MEM_ALLOC_ENABLE: allocations of 2 MB and
    /// more aligned to 2 MB and madvised MADV_HUGEPAGE). Decode streams every weight once per token; with 4 KB pages
    /// that is a TLB miss every 64 cache lines. Kernels with THP "never" ignore it.
    /// </summary>
    public static void RequestHugePages() => SetDefault("THP_MEM_ALLOC_ENABLE", "1");

    /// <summary>
    /// Makes MKL's results a function of the inputs alone (its conditional numerical reproducibility, MKL_CBWR, in
    /// strict mode). Without it, sgemm picks its code path by the operands' memory alignment and splits work between
    /// threads as they come, so the same training step run twice can differ in the last bits, and a resumed run no
    /// longer equals the uninterrupted one. MKL reads it when it first runs; a later request changes nothing.
    /// </summary>
    public static void RequestReproducibleMath() => SetDefault("MKL_CBWR", "AUTO,STRICT");

    private static void SetDefault(string name, string value)
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            _ = SetEnv(name, value, overwrite: 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No glibc-compatible C library: libtorch keeps its defaults.
        }
    }
}
