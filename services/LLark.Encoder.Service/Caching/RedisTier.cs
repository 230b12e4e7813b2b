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

    private RedisTier(ConnectionMultiplexer connection) => this.connection = connection;

    public static async Task<RedisTier> ConnectAsync(string configuration)
    {
        ConfigurationOptions options = ConfigurationOptions.Parse(configuration);
        // Start even when Redis is down; the multiplexer keeps reconnecting.
        options.AbortOnConnectFail = false;
        // While disconnected, fail commands at once (a miss) instead of holding requests in a backlog.
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ClientName ??= "llark-encoder";
        return new RedisTier(await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false));
    }

    public bool IsConnected => connection.IsConnected;

    private IDatabase Database => connection.GetDatabase();

    private static RedisKey Key(string id) => "llark:encoder:v" + EntryFormat.Version + ":" + id;

    /// <summary>The entry; null when Redis has none; <see cref="InvalidDataException"/> (after deleting it) when it is corrupt.</summary>
    public async Task<StoredEmbedding?> GetAsync(string id)
    {
        RedisValue value = await Database.StringGetAsync(Key(id)).ConfigureAwait(false);
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

    public Task PutAsync(string id, byte[] bytes) => Database.StringSetAsync(Key(id), bytes);

    public Task<bool> RemoveAsync(string id) => Database.KeyDeleteAsync(Key(id));

    public async ValueTask DisposeAsync() => await connection.DisposeAsync().ConfigureAwait(false);
}
