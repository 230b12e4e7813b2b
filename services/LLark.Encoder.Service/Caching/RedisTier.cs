using StackExchange.Redis;

namespace LLark.Encoder.Service.Caching;

/// <summary>
/// The fleet's shared tier: one Redis string per entry, key <c>llark:encoder:v1:{id}</c>, value in
/// <see cref="EntryFormat"/> (checksummed, as on disk). A SET replaces the value whole, so readers never see half of
/// one. The connection retries in the background; while Redis is down every call fails fast and the caller treats it
/// as a miss.
/// </summary>
public sealed class RedisTier : IAsyncDisposable
{
    private readonly ConnectionMultiplexer connection;
    private readonly TimeSpan? ttl;

    private RedisTier(ConnectionMultiplexer connection, TimeSpan? ttl)
    {
        this.connection = connection;
        this.ttl = ttl;
    }

    /// <param name="configuration">A StackExchange.Redis connection string.</param>
    /// <param name="ttl">How long an entry lives after its last write or hit; null: forever.</param>
    public static async Task<RedisTier> ConnectAsync(string configuration, TimeSpan? ttl = null)
    {
        ConfigurationOptions options = ConfigurationOptions.Parse(configuration);
        // Start even when Redis is down; the multiplexer keeps reconnecting.
        options.AbortOnConnectFail = false;
        // While disconnected, fail commands at once (a miss) instead of holding requests in a backlog.
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ClientName ??= "llark-encoder";
        return new RedisTier(await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false), ttl);
    }

    public bool IsConnected => connection.IsConnected;

    private IDatabase Database => connection.GetDatabase();

    private static RedisKey Key(string id) => "llark:encoder:v" + EntryFormat.Version + ":" + id;

    /// <summary>The entry; null when Redis has none; <see cref="InvalidDataException"/> (after deleting it) when it is corrupt.</summary>
    public async Task<StoredEmbedding?> GetAsync(string id)
    {
        // GETEX renews the entry's lifetime on every hit (Redis 6.2 and later).
        RedisValue value = ttl is { } life
            ? await Database.StringGetSetExpiryAsync(Key(id), life).ConfigureAwait(false)
            : await Database.StringGetAsync(Key(id)).ConfigureAwait(false);
        if (value.IsNull) return null;
        try
        {
            return EntryFormat.Read((byte[])value!, id);
        }
        catch (InvalidDataException)
        {
            await Database.KeyDeleteAsync(Key(id)).ConfigureAwait(false);
            throw;
        }
    }

    public Task PutAsync(string id, byte[] bytes) => ttl is { } life ? Database.StringSetAsync(Key(id), bytes, life) : Database.StringSetAsync(Key(id), bytes);

    /// <summary>Seconds the entry has left; null when it has no expiry or does not exist.</summary>
    public async Task<TimeSpan?> TimeToLiveAsync(string id) => await Database.KeyTimeToLiveAsync(Key(id)).ConfigureAwait(false);

    public Task<bool> RemoveAsync(string id) => Database.KeyDeleteAsync(Key(id));

    public async ValueTask DisposeAsync() => await connection.DisposeAsync().ConfigureAwait(false);
}
