namespace LLark.Encoder.Service.Caching;

/// <summary>
/// Entries as files <c>{root}/v1/{id[0..2]}/{id}.emb</c> in <see cref="EntryFormat"/>. A write goes to a temporary
/// file in the same folder, is flushed to the device, then renamed over the name: readers see the old entry, the new
/// one or none, never half of one. A file that fails its checks is deleted and reported as a miss.
/// <para>
/// Bounded: past <c>maxBytes</c> the least recently used entries are deleted, oldest first. Use is kept across
/// restarts in each file's last-write time (touched on a hit), which <see cref="IndexExisting"/> reads back at start.
/// </para>
/// </summary>
public sealed class DiskTier
{
    private const string Extension = ".emb";
    private readonly string root;
    private readonly long maxBytes;
    private readonly Lock gate = new();
    // Least recently used first.
    private readonly LinkedList<(string Id, long Bytes)> order = new();
    private readonly Dictionary<string, LinkedListNode<(string Id, long Bytes)>> nodes = new(StringComparer.Ordinal);
    private long total;

    /// <param name="directory">The cache folder (created).</param>
    /// <param name="maxBytes">Bytes of entry files to keep at most; 0: no bound.</param>
    public DiskTier(string directory, long maxBytes = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        root = Path.Combine(Path.GetFullPath(directory), "v" + EntryFormat.Version);
        this.maxBytes = maxBytes;
        Directory.CreateDirectory(root);
        // Fail at start, not at the first write, when the folder is not writable.
        string probe = Path.Combine(root, $".probe-{Guid.NewGuid():N}.tmp");
        File.WriteAllBytes(probe, []);
        File.Delete(probe);
    }

    public string Root => root;

    /// <summary>Bytes of the entries this tier knows of (all of them once <see cref="IndexExisting"/> has run).</summary>
    public long Bytes
    {
        get { lock (gate) return total; }
    }

    public int Count
    {
        get { lock (gate) return nodes.Count; }
    }

    /// <summary>
    /// Learns the entries already on disk, least recently used first, then evicts down to the bound. Entries written
    /// while it runs keep their newer place. Returns the number of entries deleted to fit.
    /// </summary>
    public int IndexExisting()
    {
        var found = new List<(string Id, long Bytes, DateTime Used)>();
        foreach (string file in Directory.EnumerateFiles(root, "*" + Extension, SearchOption.AllDirectories))
        {
            try
            {
                var info = new FileInfo(file);
                found.Add((Path.GetFileNameWithoutExtension(file), info.Length, info.LastWriteTimeUtc));
            }
            catch (IOException)
            {
                // Deleted meanwhile.
            }
        }
        lock (gate)
        {
            // Older first, each placed before everything written since start.
            foreach ((string id, long size, _) in found.OrderByDescending(f => f.Used))
            {
                if (nodes.ContainsKey(id)) continue;
                nodes[id] = order.AddFirst((id, size));
                total += size;
            }
        }
        return EvictToBound();
    }

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
            StoredEmbedding entry = EntryFormat.Read(bytes, id);
            Touch(id, path, bytes.Length);
            return entry;
        }
        catch (InvalidDataException)
        {
            Forget(id);
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
        lock (gate)
        {
            if (nodes.Remove(entry.Id, out var old))
            {
                total -= old.Value.Bytes;
                order.Remove(old);
            }
            nodes[entry.Id] = order.AddLast((entry.Id, bytes.Length));
            total += bytes.Length;
        }
        EvictToBound(keep: entry.Id);
    }

    public bool Remove(string id)
    {
        Forget(id);
        return TryDelete(PathOf(id));
    }

    /// <summary>Deletes least recently used entries until the tier fits its bound; never <paramref name="keep"/>.</summary>
    private int EvictToBound(string? keep = null)
    {
        if (maxBytes == 0) return 0;
        int evicted = 0;
        while (true)
        {
            string victim;
            lock (gate)
            {
                if (total <= maxBytes || order.First is not { } first) return evicted;
                if (first.Value.Id == keep)
                {
                    if (order.Count == 1) return evicted;
                    order.Remove(first);
                    order.AddLast(first);
                    continue;
                }
                victim = first.Value.Id;
                order.Remove(first);
                nodes.Remove(victim);
                total -= first.Value.Bytes;
            }
            if (TryDelete(PathOf(victim))) evicted++;
        }
    }

    /// <summary>Marks a hit as the most recent use, in memory and in the file's time (so the order survives a restart).</summary>
    private void Touch(string id, string path, long size)
    {
        lock (gate)
        {
            if (nodes.TryGetValue(id, out var node)) order.Remove(node);
            else
            {
                total += size;
                node = new LinkedListNode<(string Id, long Bytes)>((id, size));
                nodes[id] = node;
            }
            order.AddLast(node);
        }
        try
        {
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Evicted or read-only meanwhile: the order in memory still holds.
        }
    }

    private void Forget(string id)
    {
        lock (gate)
        {
            if (!nodes.Remove(id, out var node)) return;
            order.Remove(node);
            total -= node.Value.Bytes;
        }
    }

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
