namespace LLark.Encoder.Service.Caching;

/// <summary>
/// Entries as files <c>{root}/v1/{id[0..2]}/{id}.emb</c> in <see cref="EntryFormat"/>. A write goes to a temporary
/// file in the same folder, is flushed to the device, then renamed over the name: readers see the old entry, the new
/// one or none, never half of one. A file that fails its checks is deleted and reported as a miss.
/// </summary>
public sealed class DiskTier
{
    private const string Extension = ".emb";
    private readonly string root;

    public DiskTier(string directory)
    {
        root = Path.Combine(Path.GetFullPath(directory), "v" + EntryFormat.Version);
        Directory.CreateDirectory(root);
        // Fail at start, not at the first write, when the folder is not writable.
        string probe = Path.Combine(root, $".probe-{Guid.NewGuid():N}.tmp");
        File.WriteAllBytes(probe, []);
        File.Delete(probe);
    }

    public string Root => root;

    public string PathOf(string id) => Path.Combine(root, id[..2], id + Extension);

    /// <summary>The entry; null when there is none; <see cref="InvalidDataException"/> (after deleting it) when it is corrupt.</summary>
    public async Task<StoredEmbedding?> GetAsync(string id, CancellationToken ct)
    {
        string path = PathOf(id);
        byte[] bytes;
        try
        {
            bytes = await File.ReadAllBytesAsync(path, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        try
        {
            return EntryFormat.Read(bytes, id);
        }
        catch (InvalidDataException)
        {
            TryDelete(path);
            throw;
        }
    }

    public async Task PutAsync(StoredEmbedding entry, byte[] bytes, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(entry);
        string path = PathOf(entry.Id);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temporary = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
            await using (stream.ConfigureAwait(false))
            {
                await stream.WriteAsync(bytes, ct).ConfigureAwait(false);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    public bool Remove(string id) => TryDelete(PathOf(id));

    /// <summary>Deletes temporary files that writers which died mid-write left behind (older than an hour, so never a live one).</summary>
    public int SweepTemporaryFiles()
    {
        int removed = 0;
        DateTime cutoff = DateTime.UtcNow.AddHours(-1);
        foreach (string file in Directory.EnumerateFiles(root, "*.tmp", SearchOption.AllDirectories))
        {
            if (File.GetLastWriteTimeUtc(file) < cutoff && TryDelete(file)) removed++;
        }
        return removed;
    }

    private static bool TryDelete(string path)
    {
        try
        {
            if (!File.Exists(path)) return false;
            File.Delete(path);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }
}
