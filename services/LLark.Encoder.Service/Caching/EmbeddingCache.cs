using Microsoft.Extensions.Options;

namespace LLark.Encoder.Service.Caching;

/// <summary>
/// The tiers in lookup order: memory, then disk, then Redis; a hit in a lower tier is copied into the tiers above
/// it. A write goes to every tier. A tier that fails (a full disk, Redis down) is logged and skipped: the cache
/// makes requests cheaper but never makes them fail. A corrupt entry is deleted where it was found and counts as a miss.
/// </summary>
public sealed class EmbeddingCache(IOptions<EncoderServiceOptions> options, EncoderMetrics metrics, ILogger<EmbeddingCache> logger)
    : IHostedService, IAsyncDisposable
{
    public const string MemoryTierName = "memory";
    public const string DiskTierName = "disk";
    public const string RedisTierName = "redis";

    private MemoryTier? memory;

    public MemoryTier? Memory => memory;

    public DiskTier? Disk { get; private set; }

    public RedisTier? Redis { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        EncoderCacheOptions o = options.Value.Cache;
        if (o.MemoryBytes > 0)
        {
            var tier = new MemoryTier(o.MemoryBytes);
            metrics.MemoryBytes = () => tier.Bytes;
            metrics.MemoryEntries = () => tier.Count;
            memory = tier;
        }
        if (!string.IsNullOrWhiteSpace(o.Directory))
        {
            Disk = new DiskTier(o.Directory, o.DiskBytes);
            DiskTier disk = Disk;
            metrics.DiskBytes = () => disk.Bytes;
            metrics.DiskEntries = () => disk.Count;
            string root = Disk.Root;
            _ = Task.Run(() =>
            {
                try
                {
                    int removed = disk.SweepTemporaryFiles();
                    if (removed > 0) Log.TemporaryFilesSwept(logger, removed, root);
                    int evicted = disk.IndexExisting();
                    Log.DiskIndexed(logger, disk.Count, disk.Bytes, root, evicted);
                }
                catch (IOException e)
                {
                    Log.TierFailed(logger, DiskTierName, "sweep", e.Message);
                }
            }, CancellationToken.None);
        }
        if (!string.IsNullOrWhiteSpace(o.Redis))
        {
            Redis = await RedisTier.ConnectAsync(o.Redis, o.RedisTtl is { } ttl && ttl > TimeSpan.Zero ? ttl : null).ConfigureAwait(false);
            if (!Redis.IsConnected) Log.RedisNotConnected(logger);
        }
        Log.CacheTiers(logger, o.MemoryBytes, Disk?.Root ?? "(off)", Redis is null ? "(off)" : "on");
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The entry from the first tier that holds a sound copy, with the tier's name; null when none does.</summary>
    public async Task<(StoredEmbedding Entry, string Tier)?> GetAsync(string id, CancellationToken ct)
    {
        if (memory is not null)
        {
            if (memory.Get(id) is { } hot)
            {
                metrics.Hit(MemoryTierName);
                return (hot, MemoryTierName);
            }
            metrics.Miss(MemoryTierName);
        }
        if (Disk is not null && await Try(DiskTierName, "read", () => Disk.GetAsync(id, ct)).ConfigureAwait(false) is { } onDisk)
        {
            metrics.Hit(DiskTierName);
            memory?.Put(onDisk);
            return (onDisk, DiskTierName);
        }
        if (Disk is not null) metrics.Miss(DiskTierName);
        if (Redis is not null && await Try(RedisTierName, "read", () => Redis.GetAsync(id)).ConfigureAwait(false) is { } shared)
        {
            metrics.Hit(RedisTierName);
            memory?.Put(shared);
            if (Disk is not null) await Try(DiskTierName, "write", () => Disk.PutAsync(shared, EntryFormat.Write(shared), ct)).ConfigureAwait(false);
            return (shared, RedisTierName);
        }
        if (Redis is not null) metrics.Miss(RedisTierName);
        return null;
    }

    /// <summary>The memory tier only: the cheap second look the single-flight gate takes.</summary>
    public StoredEmbedding? PeekMemory(string id) => memory?.Get(id);

    public async Task PutAsync(StoredEmbedding entry, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(entry);
        memory?.Put(entry);
        if (Disk is null && Redis is null) return;
        byte[] bytes = EntryFormat.Write(entry);
        Task disk = Disk is null ? Task.CompletedTask : Try(DiskTierName, "write", () => Disk.PutAsync(entry, bytes, ct));
        Task redis = Redis is null ? Task.CompletedTask : Try(RedisTierName, "write", () => Redis.PutAsync(entry.Id, bytes));
        await Task.WhenAll(disk, redis).ConfigureAwait(false);
    }

    /// <summary>Removes the id from every tier; true when any tier held it.</summary>
    public async Task<bool> RemoveAsync(string id)
    {
        bool removed = memory?.Remove(id) ?? false;
        removed |= Disk?.Remove(id) ?? false;
        if (Redis is not null) removed |= await Try(RedisTierName, "delete", () => Redis.RemoveAsync(id)).ConfigureAwait(false);
        return removed;
    }

    private async Task<T?> Try<T>(string tier, string operation, Func<Task<T?>> action)
    {
        try
        {
            return await action().ConfigureAwait(false);
        }
        catch (InvalidDataException e)
        {
            metrics.Corrupt(tier);
            Log.CorruptEntry(logger, tier, e.Message);
            return default;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or StackExchange.Redis.RedisException or TimeoutException)
        {
            // One line, no stack: while Redis is down this fires on every request.
            Log.TierFailed(logger, tier, operation, e.Message);
            return default;
        }
    }

    private async Task Try(string tier, string operation, Func<Task> action) =>
        await Try<bool>(tier, operation, async () => { await action().ConfigureAwait(false); return true; }).ConfigureAwait(false);

    public async ValueTask DisposeAsync()
    {
        if (Redis is not null) await Redis.DisposeAsync().ConfigureAwait(false);
    }
}
