namespace LLark.Language.Engine.Model;

/// <summary>
/// Transparent huge pages for large buffers this engine streams or fills at once. Where the kernel's THP mode is
/// "madvise" (a common default), memory is backed by 2 MB pages only where advised: without it, filling fresh memory
/// takes a page fault every 4 KB instead of one every 2 MB, and a TLB entry covers 512 times less of a streamed buffer.
/// </summary>
internal static unsafe partial class HugePages
{
    public const int Size = 2 << 20;

    private const int MadviseHugePage = 14;

    /// <summary>Advises the whole 2 MB pages inside [address, address + bytes) onto huge pages; ordinary pages elsewhere, or without Linux's C library.</summary>
    public static void Advise(void* address, long bytes)
    {
        if (!OperatingSystem.IsLinux()) return;
        long start = ((long)address + Size - 1) & ~(long)(Size - 1), end = ((long)address + bytes) & ~(long)(Size - 1);
        if (end <= start) return;
        try
        {
            _ = Madvise((void*)start, (nuint)(end - start), MadviseHugePage);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No glibc-compatible C library: ordinary pages.
        }
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* address, nuint length, int advice);
}
