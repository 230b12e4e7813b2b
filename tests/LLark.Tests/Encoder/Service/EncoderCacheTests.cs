using Grpc.Core;
using LLark.Common.V1;
using LLark.Encoder.Service.Caching;
using LLark.Encoder.V1;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Encoder.Service;

/// <summary>The durable tiers across hosts: a restart, a corrupted file, and a second pod that shares only Redis.</summary>
public sealed class EncoderCacheTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("llark-encoder-tiers-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private string Folder(string name) => Path.Combine(root, name);

    [Fact]
    public async Task EmbeddingsSurviveARestartAndAreServedFromDiskWithoutEncoding()
    {
        byte[] wav = EncoderHarness.Wav(seed: 20);
        EmbedResponse first;
        await using (LoopbackHost host = await EncoderHarness.StartAsync(Folder("cache")))
        {
            first = await EncoderHarness.Client(host).EmbedAsync(EncoderHarness.Request(wav, frames: true));
            Assert.False(first.Cached);
        }

        await using LoopbackHost restarted = await EncoderHarness.StartAsync(Folder("cache"));
        var client = EncoderHarness.Client(restarted);
        var (values, _, _) = await EncoderHarness.Fetch(client, new GetEmbeddingRequest { EmbeddingId = first.EmbeddingId });
        Assert.Equal(EmbeddingFramesCodec.Decode(first.Embedding), values);
        EmbedResponse again = await client.EmbedAsync(EncoderHarness.Request(wav));
        Assert.True(again.Cached);
        Assert.Equal(first.EmbeddingId, again.EmbeddingId);
        Assert.Equal(first.AudioSeconds, again.AudioSeconds);
        Assert.Equal(first.EffectiveFps, again.EffectiveFps);
        Assert.Equal(0, EncoderHarness.Metrics(restarted).ClipsEncoded);
    }

    [Theory]
    [InlineData("flip")]
    [InlineData("torn")]
    public async Task ACorruptEntryIsDetectedDeletedNeverServedAndRecomputed(string damage)
    {
        // No memory tier: every read goes to the file.
        await using LoopbackHost host = await EncoderHarness.StartAsync(Folder("cache"), new Dictionary<string, string?> { ["LLark:Encoder:Cache:MemoryBytes"] = "0" });
        var client = EncoderHarness.Client(host);
        byte[] wav = EncoderHarness.Wav(seed: 21);
        EmbedResponse first = await client.EmbedAsync(EncoderHarness.Request(wav, frames: true));
        string file = new DiskTier(Folder("cache")).PathOf(first.EmbeddingId);
        byte[] sound = File.ReadAllBytes(file);
        Assert.True((await client.EmbedAsync(EncoderHarness.Request(wav))).Cached);

        byte[] damaged = damage == "flip" ? [.. sound] : sound[..(sound.Length / 2)];
        if (damage == "flip") damaged[sound.Length / 2] ^= 0x40;
        File.WriteAllBytes(file, damaged);

        var e = await Assert.ThrowsAsync<RpcException>(() => EncoderHarness.Fetch(client, new GetEmbeddingRequest { EmbeddingId = first.EmbeddingId }));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.False(File.Exists(file));

        File.WriteAllBytes(file, damaged);
        EmbedResponse recomputed = await client.EmbedAsync(EncoderHarness.Request(wav, frames: true));
        Assert.False(recomputed.Cached);
        Assert.Equal(2, EncoderHarness.Metrics(host).ClipsEncoded);
        Assert.Equal(first.Embedding.Data, recomputed.Embedding.Data);
        Assert.Equal(sound, File.ReadAllBytes(file));
    }

    [Fact]
    public void TheMemoryTierEvictsTheLeastRecentlyUsedAndAReaderKeepsWhatItHolds()
    {
        static StoredEmbedding Entry(char c) => new(new string(c, 64), new float[250], 5, 50, 25, 26.5, "m", 0.2);
        long size = Entry('a').Bytes;
        var tier = new MemoryTier(3 * size);
        tier.Put(Entry('a'));
        tier.Put(Entry('b'));
        tier.Put(Entry('c'));
        StoredEmbedding reading = tier.Get(new string('a', 64))!;
        tier.Put(Entry('d'));
        Assert.Null(tier.Get(new string('b', 64)));
        Assert.NotNull(tier.Get(new string('a', 64)));
        Assert.Equal(3 * size, tier.Bytes);
        tier.Put(Entry('e'));
        tier.Put(Entry('f'));
        tier.Put(Entry('g'));
        Assert.Null(tier.Get(new string('a', 64)));
        Assert.Equal(3, tier.Count);
        // Evicted, yet whole for the request that still holds it.
        Assert.Equal(250, reading.Values.Length);
        Assert.Equal(5, reading.Frames);
        tier.Put(new StoredEmbedding(new string('h', 64), new float[4000], 80, 50, 25, 26.5, "m", 3.2));
        Assert.Equal(3, tier.Count);
    }

    [Fact]
    public async Task TheDiskTierKeepsItsBoundDeletingTheLeastRecentlyUsedAndRemembersUseAcrossARestart()
    {
        static StoredEmbedding Entry(char c) => new(new string(c, 64), new float[250], 5, 50, 25, 26.5, "m", 0.2);
        long size = EntryFormat.Write(Entry('a')).Length;
        string folder = Folder("bounded");
        var tier = new DiskTier(folder, maxBytes: 3 * size);
        foreach (char c in "abc")
        {
            await tier.PutAsync(Entry(c), EntryFormat.Write(Entry(c)), CancellationToken.None);
            // File times carry the order across a restart: keep them apart on coarse clocks.
            await Task.Delay(20);
        }
        Assert.NotNull(await tier.GetAsync(new string('a', 64), CancellationToken.None));
        await tier.PutAsync(Entry('d'), EntryFormat.Write(Entry('d')), CancellationToken.None);
        // b was the least recently used (a was read after it).
        Assert.False(File.Exists(tier.PathOf(new string('b', 64))));
        Assert.True(File.Exists(tier.PathOf(new string('a', 64))));
        Assert.Equal((3, 3 * size), (tier.Count, tier.Bytes));

        // A restart with a smaller bound learns the files and their order from disk: c is now the oldest use.
        await Task.Delay(20);
        Assert.NotNull(await tier.GetAsync(new string('a', 64), CancellationToken.None));
        var restarted = new DiskTier(folder, maxBytes: 2 * size);
        Assert.Equal(1, restarted.IndexExisting());
        Assert.False(File.Exists(restarted.PathOf(new string('c', 64))));
        Assert.NotNull(await restarted.GetAsync(new string('a', 64), CancellationToken.None));
        Assert.NotNull(await restarted.GetAsync(new string('d', 64), CancellationToken.None));
        Assert.Equal((2, 2 * size), (restarted.Count, restarted.Bytes));

        // Removing forgets the bytes; no bound keeps everything.
        Assert.True(restarted.Remove(new string('d', 64)));
        Assert.Equal((1, size), (restarted.Count, restarted.Bytes));
        var unbounded = new DiskTier(folder);
        foreach (char c in "wxyz") await unbounded.PutAsync(Entry(c), EntryFormat.Write(Entry(c)), CancellationToken.None);
        Assert.Equal(0, unbounded.IndexExisting());
        Assert.Equal(5, unbounded.Count);
    }

    [Fact]
    public async Task RedisEntriesExpireAfterTheirLifetimeAndEachHitRenewsIt()
    {
        using RedisServer redis = await RedisServer.StartAsync();
        var entry = new StoredEmbedding(new string('e', 64), new float[10], 5, 2, 25, 26.5, "m", 0.2);
        await using RedisTier tier = await RedisTier.ConnectAsync(redis.ConnectionString, TimeSpan.FromSeconds(100));
        await tier.PutAsync(entry.Id, EntryFormat.Write(entry));
        TimeSpan? left = await tier.TimeToLiveAsync(entry.Id);
        Assert.InRange(left!.Value.TotalSeconds, 90, 100);
        await using RedisTier shortLived = await RedisTier.ConnectAsync(redis.ConnectionString, TimeSpan.FromSeconds(1000));
        Assert.NotNull(await shortLived.GetAsync(entry.Id));
        Assert.InRange((await tier.TimeToLiveAsync(entry.Id))!.Value.TotalSeconds, 990, 1000);
        await using RedisTier forever = await RedisTier.ConnectAsync(redis.ConnectionString);
        await forever.PutAsync(entry.Id, EntryFormat.Write(entry));
        Assert.Null(await forever.TimeToLiveAsync(entry.Id));
    }

    [Fact]
    public void EntriesFailTheirChecksWhenAnyByteChangesOrTheyAreFiledUnderAnotherId()
    {
        var entry = new StoredEmbedding(new string('a', 64), [1f, 2f, 3f, 4f, 5f, 6f], 3, 2, 25, 26.5, "jukebox-5b/blocks36/fps25/fp32", 0.11);
        byte[] bytes = EntryFormat.Write(entry);
        StoredEmbedding back = EntryFormat.Read(bytes, entry.Id);
        Assert.Equal(entry.Values.ToArray(), back.Values.ToArray());
        Assert.Equal((3, 2, 25.0, 26.5, entry.ModelId, 0.11), (back.Frames, back.Width, back.Fps, back.EffectiveFps, back.ModelId, back.AudioSeconds));
        for (int i = 0; i < bytes.Length; i++)
        {
            byte[] flipped = [.. bytes];
            flipped[i] ^= 1;
            Assert.Throws<InvalidDataException>(() => EntryFormat.Read(flipped, entry.Id));
        }
        Assert.Throws<InvalidDataException>(() => EntryFormat.Read(bytes.AsSpan(0, bytes.Length - 1), entry.Id));
        Assert.Throws<InvalidDataException>(() => EntryFormat.Read(bytes, new string('b', 64)));
    }

    [Fact]
    public async Task ASecondHostWithAnEmptyDiskGetsTheEmbeddingFromRedis()
    {
        using RedisServer redis = await RedisServer.StartAsync();
        var shared = new Dictionary<string, string?> { ["LLark:Encoder:Cache:Redis"] = redis.ConnectionString };
        byte[] wav = EncoderHarness.Wav(seed: 22);
        await using LoopbackHost first = await EncoderHarness.StartAsync(Folder("pod-a"), shared);
        await using LoopbackHost second = await EncoderHarness.StartAsync(Folder("pod-b"), shared);

        EmbedResponse made = await EncoderHarness.Client(first).EmbedAsync(EncoderHarness.Request(wav, frames: true));
        EmbedResponse fromRedis = await EncoderHarness.Client(second).EmbedAsync(EncoderHarness.Request(wav, frames: true));
        Assert.True(fromRedis.Cached);
        Assert.Equal(made.EmbeddingId, fromRedis.EmbeddingId);
        Assert.Equal(made.Embedding.Data, fromRedis.Embedding.Data);
        Assert.Equal(0, EncoderHarness.Metrics(second).ClipsEncoded);
        // The hit was copied down to the second pod's disk.
        Assert.True(File.Exists(new DiskTier(Folder("pod-b")).PathOf(made.EmbeddingId)));

        // Deleting on one pod removes the shared copy: a third pod with an empty disk no longer finds it.
        Assert.True((await EncoderHarness.Client(second).DeleteEmbeddingAsync(new DeleteEmbeddingRequest { EmbeddingId = made.EmbeddingId })).Deleted);
        await using LoopbackHost third = await EncoderHarness.StartAsync(Folder("pod-c"), shared);
        var e = await Assert.ThrowsAsync<RpcException>(() => EncoderHarness.Fetch(EncoderHarness.Client(third), new GetEmbeddingRequest { EmbeddingId = made.EmbeddingId }));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
    }

    [Fact]
    public async Task ARedisThatIsDownMakesMissesNotFailures()
    {
        using RedisServer redis = await RedisServer.StartAsync();
        string address = redis.ConnectionString + ",connectTimeout=300";
        redis.Dispose();
        await using LoopbackHost host = await EncoderHarness.StartAsync(Folder("cache"), new Dictionary<string, string?> { ["LLark:Encoder:Cache:Redis"] = address });
        var client = EncoderHarness.Client(host);
        byte[] wav = EncoderHarness.Wav(seed: 23, seconds: 1);
        Assert.False((await client.EmbedAsync(EncoderHarness.Request(wav))).Cached);
        Assert.True((await client.EmbedAsync(EncoderHarness.Request(wav))).Cached);
    }
}
