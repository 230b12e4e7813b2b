using Microsoft.Win32.SafeHandles;

namespace LLark.Checkpoints;

/// <summary>File access shared by the readers, turning I/O failures into <see cref="CheckpointException"/>s that name the file.</summary>
internal static class CheckpointFiles
{
    public static SafeFileHandle OpenRead(string path)
    {
        try
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new CheckpointException($"Cannot open checkpoint file {path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Fills <paramref name="buffer"/> from <paramref name="offset"/>. A short read means the file shrank or was
    /// truncated after its header was checked; it fails rather than leaving part of a tensor unwritten.
    /// </summary>
    public static void ReadExactly(SafeFileHandle handle, Span<byte> buffer, long offset, string path, string? tensor)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int read;
            try
            {
                read = RandomAccess.Read(handle, buffer[done..], offset + done);
            }
            catch (IOException e)
            {
                throw new CheckpointException($"Reading {Describe(path, tensor)} failed: {e.Message}", e);
            }
            if (read == 0)
                throw new CheckpointException($"{Describe(path, tensor)} is truncated: the file ends at byte {offset + done}.");
            done += read;
        }
    }

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes from a stream, failing on a premature end.</summary>
    public static void ReadExactly(Stream stream, Span<byte> buffer, string path, string? tensor)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException e)
        {
            throw new CheckpointException($"{Describe(path, tensor)} is truncated.", e);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            throw new CheckpointException($"Reading {Describe(path, tensor)} failed: {e.Message}", e);
        }
    }

    private static string Describe(string path, string? tensor) => tensor is null ? path : $"tensor '{tensor}' in {path}";
}
