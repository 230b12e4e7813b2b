using Google.Protobuf;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Engine.Model;
using LLark.Encoder.Service;
using LLark.Encoder.Service.Caching;
using LLark.Encoder.V1;
using LLark.Tests.Encoder.Engine;
using LLark.Tests.Encoder.Engine.Audio;
using LLark.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using TorchSharp;

namespace LLark.Tests.Encoder.Service;

/// <summary>One encoder service (tiny Jukebox, 2 MiB and 5 s clip limits, its own cache folder) shared by the tests of this class.</summary>
public sealed class EncoderServiceFixture : IAsyncLifetime
{
    public const int MaxAudioBytes = 2 << 20;

    internal string CacheDirectory { get; } = Directory.CreateTempSubdirectory("llark-encoder-cache-").FullName;

    internal LoopbackHost Host { get; private set; } = null!;

    public EncoderService.EncoderServiceClient Client => EncoderHarness.Client(Host);

    internal long Encoded => EncoderHarness.Metrics(Host).ClipsEncoded;

    public async Task InitializeAsync() => Host = await EncoderHarness.StartAsync(CacheDirectory, new Dictionary<string, string?>
    {
        ["LLark:Encoder:MaxAudioBytes"] = MaxAudioBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["LLark:Encoder:MaxAudioSeconds"] = "5",
    });

    public async Task DisposeAsync()
    {
        await Host.DisposeAsync();
        Directory.Delete(CacheDirectory, recursive: true);
    }
}

public sealed class EncoderServiceTests(EncoderServiceFixture fixture) : IClassFixture<EncoderServiceFixture>
{
    private EncoderService.EncoderServiceClient Client => fixture.Client;

    [Fact]
    public async Task EmbedReturnsTheEnginesOwnFramesAndDescribesThem()
    {
        byte[] wav = File.ReadAllBytes(JukeboxTiny.File("test_audio_4s.wav"));
        EmbedResponse response = await Client.EmbedAsync(EncoderHarness.Request(wav, frames: true, filename: "test_audio_4s.wav"));

        using JukeboxEncoder encoder = JukeboxTiny.Load();
        PreparedAudio prepared = AudioFrontEnd.Prepare(wav, encoder.Config.Prior.SampleRate, encoder.Config.ContextSamples);
        AudioEmbedding expected = encoder.Embed(prepared.Samples);
        Assert.Equal(expected.Values, EmbeddingFramesCodec.Decode(response.Embedding));
        JukeboxTiny.AssertClose(JukeboxTiny.Golden("llark_pooled_25fps_layer3.npy"),
            torch.tensor(EmbeddingFramesCodec.Decode(response.Embedding), [response.Frames, response.Width]), "service frames vs LLark's");

        Assert.Matches("^[0-9a-f]{64}$", response.EmbeddingId);
        Assert.Equal(106u, response.Frames);
        Assert.Equal(48u, response.Width);
        Assert.Equal(25, response.Fps);
        Assert.Equal(344.53125 / 13, response.EffectiveFps, 9);
        Assert.Matches("^jukebox-[0-9a-f]{8}/blocks3/fps25/fp32$", response.EncoderModelId);
        Assert.Equal(response.EncoderModelId, response.Embedding.EncoderModelId);
        Assert.Equal(4.0, response.AudioSeconds, 6);
        Assert.Equal(FrameDType.Float32, response.Embedding.Dtype);
    }

    [Fact]
    public async Task ASecondEmbedOfTheSameClipComesFromTheCacheWithoutEncoding()
    {
        byte[] wav = EncoderHarness.Wav(seed: 2);
        long before = fixture.Encoded;
        EmbedResponse first = await Client.EmbedAsync(EncoderHarness.Request(wav, frames: true));
        Assert.False(first.Cached);
        Assert.Equal(before + 1, fixture.Encoded);

        EmbedResponse second = await Client.EmbedAsync(EncoderHarness.Request(wav, frames: true, dtype: FrameDType.Bfloat16));
        Assert.True(second.Cached);
        Assert.Equal(before + 1, fixture.Encoded);
        Assert.Equal(first.EmbeddingId, second.EmbeddingId);
        Assert.Equal(FrameDType.Bfloat16, second.Embedding.Dtype);
        float[] full = EmbeddingFramesCodec.Decode(first.Embedding);
        Assert.Equal(full.Select(v => BitConverter.Int32BitsToSingle(EmbeddingFramesCodec.ToBFloat16(v) << 16)), EmbeddingFramesCodec.Decode(second.Embedding));
        Assert.Null((await Client.EmbedAsync(EncoderHarness.Request(wav))).Embedding);
    }

    [Fact]
    public async Task TheSameSamplesInOtherContainersShareOneIdAndOneEncode()
    {
        float[] samples = EncoderHarness.Samples(seed: 3);
        byte[][] variants =
        [
            WavWriter.Write([samples], 44100, "pcm16"),
            WavWriter.Write([samples], 44100, "float32"),
            WavWriter.Write([samples], 44100, "pcm24"),
            WavWriter.Write([samples, samples], 44100, "pcm16"),
            EncoderHarness.WithListChunk(WavWriter.Write([samples], 44100, "pcm16")),
        ];
        Assert.Equal(variants.Length, variants.Select(Convert.ToBase64String).Distinct().Count());
        long before = fixture.Encoded;
        var ids = new List<string>();
        foreach (byte[] variant in variants) ids.Add((await Client.EmbedAsync(EncoderHarness.Request(variant))).EmbeddingId);
        Assert.Single(ids.Distinct());
        Assert.Equal(before + 1, fixture.Encoded);

        // Louder by a power of two is the same clip after peak normalisation; a different clip is not.
        float[] louder = [.. samples.Select(x => x * 2)];
        Assert.Equal(ids[0], (await Client.EmbedAsync(EncoderHarness.Request(WavWriter.Write([louder], 44100, "float32")))).EmbeddingId);
        Assert.NotEqual(ids[0], (await Client.EmbedAsync(EncoderHarness.Request(EncoderHarness.Wav(seed: 33)))).EmbeddingId);
    }

    [Fact]
    public async Task Mp3AndOggClipsAreDecodedAndEmbedded()
    {
        byte[] mp3 = File.ReadAllBytes(RepoPaths.Fixture("audio-formats", "tone_440_660_stereo.mp3"));
        byte[] ogg = File.ReadAllBytes(RepoPaths.Fixture("audio-formats", "tone_440_660_stereo.ogg"));
        EmbedResponse fromMp3 = await Client.EmbedAsync(EncoderHarness.Request(mp3, filename: "tone.mp3"));
        EmbedResponse fromOgg = await Client.EmbedAsync(EncoderHarness.Request(ogg, filename: "tone.ogg"));
        Assert.InRange(fromMp3.AudioSeconds, 0.9, 1.2);
        Assert.InRange(fromOgg.AudioSeconds, 0.9, 1.2);
        Assert.True(fromMp3.Frames >= 20);
        // Lossy codecs change the samples, so each file is its own clip.
        Assert.NotEqual(fromMp3.EmbeddingId, fromOgg.EmbeddingId);
    }

    [Fact]
    public async Task ConcurrentRequestsForTheSameNewClipEncodeItOnce()
    {
        byte[] wav = EncoderHarness.Wav(seed: 4);
        long before = fixture.Encoded;
        EmbedResponse[] responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Client.EmbedAsync(EncoderHarness.Request(wav)).ResponseAsync));
        Assert.Single(responses.Select(r => r.EmbeddingId).Distinct());
        Assert.Equal(before + 1, fixture.Encoded);
    }

    [Fact]
    public async Task EmbedStreamInChunksGivesWhatEmbedGives()
    {
        byte[] wav = EncoderHarness.Wav(seed: 5, seconds: 3);
        EmbedResponse viaStream = await Stream(wav, chunk: 10_000, announce: true);
        EmbedResponse unary = await Client.EmbedAsync(EncoderHarness.Request(wav, frames: true));
        Assert.False(viaStream.Cached);
        Assert.True(unary.Cached);
        Assert.Equal(unary.EmbeddingId, viaStream.EmbeddingId);
        Assert.Equal(unary.Embedding.Data, viaStream.Embedding.Data);
        Assert.Equal(unary.EmbeddingId, (await Stream(wav, chunk: 4096, announce: false)).EmbeddingId);
    }

    [Fact]
    public async Task AStreamedWavIsEncodedToTheUnaryFramesBitForBitUnderTheSameId()
    {
        // 24-bit stereo with a chunk before the data, in pieces that split frames and the header: encoded from the
        // stream first, then deleted and encoded again from one Embed message, so that neither answer is the cache's.
        float[] left = EncoderHarness.Samples(seed: 21, seconds: 3), right = EncoderHarness.Samples(seed: 22, seconds: 3);
        byte[] wav = EncoderHarness.WithListChunk(WavWriter.Write([left, right], 44100, "pcm24"));
        EmbedResponse viaStream = await Stream(wav, chunk: 7777, announce: false);
        Assert.False(viaStream.Cached);
        Assert.True((await Client.DeleteEmbeddingAsync(new DeleteEmbeddingRequest { EmbeddingId = viaStream.EmbeddingId })).Deleted);
        EmbedResponse unary = await Client.EmbedAsync(EncoderHarness.Request(wav, frames: true));
        Assert.False(unary.Cached);
        Assert.Equal(unary.EmbeddingId, viaStream.EmbeddingId);
        Assert.Equal(unary.Embedding.Data, viaStream.Embedding.Data);
        Assert.Equal((unary.Frames, unary.AudioSeconds), (viaStream.Frames, viaStream.AudioSeconds));
    }

    [Fact]
    public async Task AMalformedWavHeaderMidStreamEndsTheCallWithInvalidArgumentNamingIt()
    {
        byte[] wav = EncoderHarness.Wav(seed: 23, seconds: 2);
        System.Buffers.Binary.BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(32), 0);
        using var call = Client.EmbedStream();
        await call.RequestStream.WriteAsync(new EmbedStreamRequest { Header = new EmbedStreamHeader { Filename = "bad.wav", TotalBytes = (ulong)wav.Length } });
        try
        {
            // The RIFF header alone, then the rest: the refusal comes with the fmt chunk, whatever follows it.
            await call.RequestStream.WriteAsync(new EmbedStreamRequest { Chunk = ByteString.CopyFrom(wav, 0, 12) });
            for (int at = 12; at < wav.Length; at += 8192)
                await call.RequestStream.WriteAsync(new EmbedStreamRequest { Chunk = ByteString.CopyFrom(wav, at, Math.Min(8192, wav.Length - at)) });
            await call.RequestStream.CompleteAsync();
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException)
        {
            // The server ended the call while the client was still writing: expected.
        }
        var refused = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        Assert.Equal("audio: corrupt: the WAV fmt chunk gives a block align of 0 bytes; a frame takes at least one", refused.Status.Detail);
        Assert.Equal("corrupt", call.GetTrailers().GetValue("llark-audio-error"));
    }

    private async Task<EmbedResponse> Stream(byte[] audio, int chunk, bool announce, ulong? totalBytes = null)
    {
        using var call = Client.EmbedStream();
        await call.RequestStream.WriteAsync(new EmbedStreamRequest
        {
            Header = new EmbedStreamHeader { Filename = "upload.wav", TotalBytes = totalBytes ?? (announce ? (ulong)audio.Length : 0), ReturnFrames = true },
        });
        for (int at = 0; at < audio.Length; at += chunk)
            await call.RequestStream.WriteAsync(new EmbedStreamRequest { Chunk = ByteString.CopyFrom(audio, at, Math.Min(chunk, audio.Length - at)) });
        await call.RequestStream.CompleteAsync();
        return await call.ResponseAsync;
    }

    [Fact]
    public async Task GetEmbeddingStreamsChunksThatReassembleToTheFrames()
    {
        EmbedResponse embedded = await Client.EmbedAsync(EncoderHarness.Request(EncoderHarness.Wav(seed: 6), frames: true));
        float[] expected = EmbeddingFramesCodec.Decode(embedded.Embedding);

        var (values, chunks, first) = await EncoderHarness.Fetch(Client, new GetEmbeddingRequest { EmbeddingId = embedded.EmbeddingId, FramesPerChunk = 7 });
        Assert.Equal(expected, values);
        Assert.Equal((int)Math.Ceiling(embedded.Frames / 7.0), chunks);
        Assert.Equal(7u, first.Frames);
        Assert.Equal(25, first.Fps);
        Assert.Equal(embedded.EncoderModelId, first.EncoderModelId);

        // The default chunk is about 1 MiB: these 48-wide frames fit in one.
        var (whole, oneChunk, _) = await EncoderHarness.Fetch(Client, new GetEmbeddingRequest { EmbeddingId = embedded.EmbeddingId });
        Assert.Equal(expected, whole);
        Assert.Equal(1, oneChunk);

        var (halves, _, bf16) = await EncoderHarness.Fetch(Client,
            new GetEmbeddingRequest { EmbeddingId = embedded.EmbeddingId, FrameDtype = FrameDType.Bfloat16, FramesPerChunk = 10 });
        Assert.Equal(FrameDType.Bfloat16, bf16.Dtype);
        Assert.Equal(expected.Select(v => BitConverter.Int32BitsToSingle(EmbeddingFramesCodec.ToBFloat16(v) << 16)), halves);
    }

    [Fact]
    public async Task DeleteRemovesTheEmbeddingFromEveryTierAndThenItIsNotFound()
    {
        EmbedResponse embedded = await Client.EmbedAsync(EncoderHarness.Request(EncoderHarness.Wav(seed: 7)));
        string file = new DiskTier(fixture.CacheDirectory).PathOf(embedded.EmbeddingId);
        Assert.True(File.Exists(file));

        Assert.True((await Client.DeleteEmbeddingAsync(new DeleteEmbeddingRequest { EmbeddingId = embedded.EmbeddingId })).Deleted);
        Assert.False(File.Exists(file));
        var missing = await Assert.ThrowsAsync<RpcException>(() => EncoderHarness.Fetch(Client, new GetEmbeddingRequest { EmbeddingId = embedded.EmbeddingId }));
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
        Assert.Contains("embedding_id", missing.Status.Detail, StringComparison.Ordinal);
        Assert.False((await Client.DeleteEmbeddingAsync(new DeleteEmbeddingRequest { EmbeddingId = embedded.EmbeddingId })).Deleted);

        var malformed = await Assert.ThrowsAsync<RpcException>(() => EncoderHarness.Fetch(Client, new GetEmbeddingRequest { EmbeddingId = "../../etc/passwd" }));
        Assert.Equal(StatusCode.InvalidArgument, malformed.StatusCode);
        var noId = await Assert.ThrowsAsync<RpcException>(async () => await Client.DeleteEmbeddingAsync(new DeleteEmbeddingRequest()));
        Assert.Equal(StatusCode.InvalidArgument, noId.StatusCode);
    }

    [Theory]
    [InlineData("empty", "empty")]
    [InlineData("truncated", "truncated")]
    [InlineData("garbage", "unsupported")]
    [InlineData("flac", "unsupported")]
    [InlineData("corrupt-mp3", "")]
    [InlineData("too-short", "")]
    [InlineData("too-long", "too-long")]
    [InlineData("nan-wav", "corrupt")]
    [InlineData("inf-wav", "corrupt")]
    public async Task BadAudioIsRefusedByNameAndTheServiceKeepsServing(string kind, string reason)
    {
        byte[] good = EncoderHarness.Wav(seed: 8, seconds: 1);
        byte[] bad = kind switch
        {
            "empty" => [],
            "truncated" => good[..(good.Length / 2)],
            "garbage" => [.. Enumerable.Range(0, 4000).Select(i => (byte)(i * 7919 % 251))],
            "flac" => File.ReadAllBytes(RepoPaths.Fixture("audio-formats", "tone_440_660_stereo.flac")),
            "corrupt-mp3" => [.. "ID3"u8, 4, 0, 0, 0, 0, 0, 0, .. Enumerable.Repeat((byte)0x5A, 3000)],
            "too-long" => EncoderHarness.Wav(seed: 9, seconds: 6),
            "nan-wav" or "inf-wav" => WavWriter.Write([[.. EncoderHarness.Samples(seed: 9, seconds: 1).Select((x, i) => i % 100 == 7 ? (kind == "nan-wav" ? float.NaN : float.NegativeInfinity) : x)]], 44100, "float32"),
            _ => WavWriter.Write([EncoderHarness.Samples(seed: 9, seconds: 0.01)], 44100, "pcm16"),
        };
        var e = await Assert.ThrowsAsync<RpcException>(async () => await Client.EmbedAsync(EncoderHarness.Request(bad, filename: kind)));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.StartsWith("audio", e.Status.Detail, StringComparison.Ordinal);
        if (reason.Length > 0)
        {
            Assert.Contains($": {reason}: ", e.Status.Detail, StringComparison.Ordinal);
            Assert.Equal(reason, e.Trailers.GetValue("llark-audio-error"));
        }
        if (kind == "flac") Assert.Contains("FLAC", e.Status.Detail, StringComparison.Ordinal);
        if (kind == "too-short") Assert.Contains("one frame", e.Status.Detail, StringComparison.Ordinal);
        if (kind == "too-long") Assert.Contains("limit of 5 s", e.Status.Detail, StringComparison.Ordinal);
        if (kind == "nan-wav") Assert.Contains("NaN sample", e.Status.Detail, StringComparison.Ordinal);
        if (kind == "inf-wav") Assert.Contains("infinite sample", e.Status.Detail, StringComparison.Ordinal);

        Assert.Equal(1.0, (await Client.EmbedAsync(EncoderHarness.Request(good))).AudioSeconds, 6);
    }

    [Fact]
    public async Task ClipsOverTheByteLimitAreRefusedBeforeTheyAreDecoded()
    {
        byte[] tooBig = new byte[EncoderServiceFixture.MaxAudioBytes + 1];
        var unary = await Assert.ThrowsAsync<RpcException>(async () => await Client.EmbedAsync(EncoderHarness.Request(tooBig)));
        Assert.Equal(StatusCode.InvalidArgument, unary.StatusCode);
        Assert.Contains("limit of 2097152", unary.Status.Detail, StringComparison.Ordinal);

        // Announced too large: refused on the header, before a byte of audio is sent.
        using (var call = Client.EmbedStream())
        {
            await call.RequestStream.WriteAsync(new EmbedStreamRequest { Header = new EmbedStreamHeader { TotalBytes = 3UL << 20 } });
            var announced = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, announced.StatusCode);
            Assert.StartsWith("header.total_bytes", announced.Status.Detail, StringComparison.Ordinal);
        }

        // Not announced: refused as soon as the running total passes the limit; the rest is never read.
        using (var call = Client.EmbedStream())
        {
            await call.RequestStream.WriteAsync(new EmbedStreamRequest { Header = new EmbedStreamHeader() });
            var chunk = ByteString.CopyFrom(new byte[512 << 10]);
            try
            {
                for (int i = 0; i < 64; i++) await call.RequestStream.WriteAsync(new EmbedStreamRequest { Chunk = chunk });
                await call.RequestStream.CompleteAsync();
            }
            catch (Exception e) when (e is RpcException or InvalidOperationException)
            {
                // The server ended the call while the client was still writing: expected.
            }
            var refused = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
            Assert.StartsWith("chunk", refused.Status.Detail, StringComparison.Ordinal);
        }

        // Announced, then cut short.
        byte[] wav = EncoderHarness.Wav(seed: 10, seconds: 1);
        var cut = await Assert.ThrowsAsync<RpcException>(() => Stream(wav, 8192, announce: true, totalBytes: (ulong)wav.Length + 100));
        Assert.Equal(StatusCode.InvalidArgument, cut.StatusCode);
        Assert.Contains("announced", cut.Status.Detail, StringComparison.Ordinal);
        Assert.False((await Stream(wav, 8192, announce: true)).Cached);
    }

    [Fact]
    public async Task AUnaryMessageOverKestrelsDefaultBodyLimitReachesTheHandler()
    {
        string cache = Directory.CreateTempSubdirectory("llark-encoder-cache-").FullName;
        try
        {
            await using LoopbackHost host = await EncoderHarness.StartAsync(cache, new Dictionary<string, string?> { ["LLark:Encoder:MaxAudioBytes"] = (48 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture) });
            EncoderService.EncoderServiceClient client = EncoderHarness.Client(host);
            // Just over Kestrel's default 30,000,000 bytes and well under the host's gRPC limit: the handler reads it and
            // refuses what it is (no known format), as it would a small clip.
            var e = await Assert.ThrowsAsync<RpcException>(async () => await client.EmbedAsync(EncoderHarness.Request(new byte[31_000_000])));
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
            Assert.StartsWith("audio: unsupported: ", e.Status.Detail, StringComparison.Ordinal);
            Assert.Equal(1.0, (await client.EmbedAsync(EncoderHarness.Request(EncoderHarness.Wav(seed: 12, seconds: 1)))).AudioSeconds, 6);
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }

    [Theory]
    [InlineData("invalid tag")]
    [InlineData("cut short")]
    [InlineData("not UTF-8")]
    [InlineData("too large")]
    public async Task RequestMessagesThatFailBeforeTheHandlerGetARealStatus(string kind)
    {
        // Bytes as a fuzzer sends them: the method's path with a body no generated client would write.
        var raw = new Method<byte[], byte[]>(MethodType.Unary, EncoderServiceHost.GrpcServiceName, kind == "too large" ? "Embed" : "DeleteEmbedding",
            Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
        byte[] body = kind switch
        {
            "invalid tag" => [0x00, 0x01],
            "cut short" => [0x0A, 0x10, (byte)'a'],
            "not UTF-8" => [0x0A, 0x03, 0xC3, 0x28, 0xFF],
            _ => new byte[3 << 20 | 1],
        };
        var e = await Assert.ThrowsAsync<RpcException>(async () => await fixture.Host.Channel.CreateCallInvoker().AsyncUnaryCall(raw, null, new CallOptions(), body));
        if (kind == "too large")
        {
            Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
            Assert.Equal($"the request message is larger than this service's limit of {EncoderServiceFixture.MaxAudioBytes + (1 << 20)} bytes", e.Status.Detail);
        }
        else
        {
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
            Assert.StartsWith("the request message is not a valid protobuf encoding: ", e.Status.Detail, StringComparison.Ordinal);
            if (kind == "not UTF-8") Assert.Contains("UTF-8", e.Status.Detail, StringComparison.Ordinal);
        }
        Assert.Equal(1.0, (await Client.EmbedAsync(EncoderHarness.Request(EncoderHarness.Wav(seed: 13, seconds: 1)))).AudioSeconds, 6);
    }

    [Fact]
    public async Task MetricsAreScrapedFromTheHttpPort()
    {
        await Client.EmbedAsync(EncoderHarness.Request(EncoderHarness.Wav(seed: 11, seconds: 1)));
        using var http = new HttpClient();
        string text = "";
        // The exporter caches its answer briefly; wait for one that includes the encode.
        for (int i = 0; i < 50 && !text.Contains("llark_encoder_encode_duration", StringComparison.Ordinal); i++)
        {
            text = await http.GetStringAsync(new Uri(fixture.Host.HttpAddress!, "/metrics"));
            if (!text.Contains("llark_encoder_encode_duration", StringComparison.Ordinal)) await Task.Delay(100);
        }
        Assert.Contains("llark_encoder_encode_duration", text, StringComparison.Ordinal);
        Assert.Contains("llark_encoder_cache_misses", text, StringComparison.Ordinal);
        Assert.Contains("llark_encoder_queue_depth", text, StringComparison.Ordinal);
        Assert.Contains("llark_encoder_cache_bytes", text, StringComparison.Ordinal);
        Assert.Equal("SERVING", await http.GetStringAsync(new Uri(fixture.Host.HttpAddress!, "/healthz")));
    }
}

/// <summary>A service with its default limits, for clips larger than the shared fixture takes.</summary>
public sealed class EncoderServiceDefaultLimitTests
{
    [Fact]
    public async Task AClipOverKestrelsDefaultBodyLimitButUnderTheServicesIsEmbedded()
    {
        using var cache = new global::LLark.Tests.Checkpoints.TempDirectory();
        await using LoopbackHost host = await EncoderHarness.StartAsync(cache.Path);
        // 40 MB of 8-bit stereo: past Kestrel's 30 MB default, under the 64 MiB MaxAudioBytes.
        byte[] wav = WavWriter.LongPcm8(20_000_000, 2, 44100);
        EmbedResponse response = await EncoderHarness.Client(host).EmbedAsync(EncoderHarness.Request(wav, filename: "long.wav"));
        Assert.Matches("^[0-9a-f]{64}$", response.EmbeddingId);
        Assert.True(response.Frames > 0);
    }

    [Fact]
    public async Task ALargeStreamedWavIsDecodedAsItArrivesAndNeverHeldWhole()
    {
        using var cache = new global::LLark.Tests.Checkpoints.TempDirectory();
        await using LoopbackHost host = await EncoderHarness.StartAsync(cache.Path);
        var held = new List<(long Bytes, string? Decoding)>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        var meters = host.App.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, meters) && instrument.Name == "llark.encoder.upload.held_bytes") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((_, bytes, tags, _) =>
        {
            lock (held) held.Add((bytes, tags.ToArray().Single(t => t.Key == "decoding").Value as string));
        });
        listener.Start();
        EncoderService.EncoderServiceClient client = EncoderHarness.Client(host);

        // 40 MB of 8-bit stereo (453 s) in 1 MiB messages.
        byte[] wav = WavWriter.LongPcm8(20_000_000, 2, 44100);
        using (var call = client.EmbedStream())
        {
            await call.RequestStream.WriteAsync(new EmbedStreamRequest { Header = new EmbedStreamHeader { Filename = "long.wav", TotalBytes = (ulong)wav.Length } });
            for (int at = 0; at < wav.Length; at += 1 << 20)
                await call.RequestStream.WriteAsync(new EmbedStreamRequest { Chunk = ByteString.CopyFrom(wav, at, Math.Min(1 << 20, wav.Length - at)) });
            await call.RequestStream.CompleteAsync();
            EmbedResponse streamed = await call.ResponseAsync;
            Assert.False(streamed.Cached);
            // One message and one read of the decoder, with room to compact: a few MiB of a 40 MB upload.
            var (bytes, decoding) = Assert.Single(held);
            Assert.Equal("incremental", decoding);
            Assert.InRange(bytes, 1, 4L << 20);
            // The whole file in one message has the id the stream had.
            EmbedResponse unary = await client.EmbedAsync(EncoderHarness.Request(wav));
            Assert.True(unary.Cached);
            Assert.Equal(streamed.EmbeddingId, unary.EmbeddingId);
        }
    }
}
