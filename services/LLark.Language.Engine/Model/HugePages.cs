using System.Runtime.InteropServices;

namespace LLark.Language.Engine.Model;

/// <summary>
/// Backs libtorch's large CPU allocations with transparent huge pages. Decode streams every weight once per
/// token; with 4 KB pages that is a TLB miss (a two-level page walk under a hypervisor) every 64 cache lines.
/// </summary>
/// <remarks>
/// libtorch's own switch, THP_MEM_ALLOC_ENABLE, aligns allocations of 2 MB and more to 2 MB and madvises them
/// MADV_HUGEPAGE; c10 reads it once, at its first CPU allocation, so it is set before any model exists. A value
/// already in the environment wins, so THP_MEM_ALLOC_ENABLE=0 turns this off. Kernels with THP "never" ignore it.
/// </remarks>
internal static partial class HugePages
{
    private const string Variable = "THP_MEM_ALLOC_ENABLE";

    // .NET keeps its own copy of the environment on Unix; libtorch reads the C library's.
    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    public static void Request()
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            _ = SetEnv(Variable, "1", overwrite: 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No glibc-compatible C library: libtorch keeps 4 KB pages, which is only slower.
        }
    }
}
