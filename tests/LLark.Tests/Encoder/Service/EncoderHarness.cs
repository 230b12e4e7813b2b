using System.Buffers.Binary;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using LLark.Common.V1;
using LLark.Encoder.Engine.Serving;
using LLark.Encoder.Service;
using LLark.Encoder.Service.Serving;
using LLark.Encoder.V1;
using LLark.Tests.Encoder.Engine;
using LLark.Tests.Encoder.Engine.Audio;
using LLark.Tests.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace LLark.Tests.Encoder.Service;

/// <summary>The tiny Jukebox as the service loads it, hosts on loopback, and clips made to order.</summary>
internal static class EncoderHarness
{
    private static readonly ConditionalWeakTable<WebApplication, EncodeCounts> Counts = new();

    private static readonly Lazy<string> ModelFolder = new(() =>
    {
        // A convert-jukebox folder: the fixture's authoritative config (3 blocks) beside its safetensors weights.
        string dir = Path.Combine(Path.GetTempPath(), $"llark-encoder-model-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "jukebox_encoder.json"), JukeboxTiny.Config(3).ToJson());
        File.Copy(JukeboxTiny.File("vqvae.safetensors"), Path.Combine(dir, "vqvae.safetensors"), overwrite: true);
        File.Copy(JukeboxTiny.File("prior_level_2.safetensors"), Path.Combine(dir, "prior_level_2.safetensors"), overwrite: true);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(dir, recursive: true);
        return dir;
    });

    public static string ModelPath => ModelFolder.Value;

    public static async Task<LoopbackHost> StartAsync(string cacheDirectory, IDictionary<string, string?>? settings = null)
    {
        var all = new Dictionary<string, string?>
        {
            ["LLark:Encoder:ModelPath"] = ModelPath,
            ["LLark:Encoder:Cache:Directory"] = cacheDirectory,
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>()) all[key] = value;
        WebApplication app = EncoderServiceHost.Build([], builder =>
        {
            LoopbackHost.Settings(all)(builder);
            builder.Services.AddSingleton<IEncodeGate, WorkerGate>();
        });
        // Counted from before the start, so a count says everything this host encoded.
        var counts = new EncodeCounts(app.Services.GetRequiredService<IMeterFactory>());
        app.Lifetime.ApplicationStopped.Register(counts.Dispose);
        Counts.Add(app, counts);
        LoopbackHost host = await LoopbackHost.StartAsync(app);
        await WaitServing(host);
        return host;
    }

    /// <summary>What a host started here has encoded.</summary>
    public static EncodeCounts Metrics(LoopbackHost host) => Counts.TryGetValue(host.App, out EncodeCounts? counts)
        ? counts
        : throw new InvalidOperationException("only hosts started by EncoderHarness.StartAsync are counted");

    /// <summary>The gate of a host started here; hold it to keep the worker from taking clips.</summary>
    public static WorkerGate Gate(LoopbackHost host) => (WorkerGate)host.App.Services.GetRequiredService<IEncodeGate>();

    public static async Task WaitServing(LoopbackHost host)
    {
        var health = new Health.HealthClient(host.Channel);
        for (int i = 0; i < 600; i++)
        {
            var status = await health.CheckAsync(new HealthCheckRequest { Service = EncoderServiceHost.GrpcServiceName });
            if (status.Status == HealthCheckResponse.Types.ServingStatus.Serving) return;
            await Task.Delay(50);
        }
        throw new TimeoutException("the encoder service never reported SERVING");
    }

    public static EncoderService.EncoderServiceClient Client(LoopbackHost host) => new(host.Channel);

    public static ModelHost.Loaded Model(LoopbackHost host) => host.App.Services.GetRequiredService<ModelHost>().Ready();

    public static EmbedRequest Request(byte[] audio, bool frames = false, FrameDType dtype = FrameDType.Unspecified, string filename = "") => new()
    {
        Audio = new AudioBytes { Data = ByteString.CopyFrom(audio), Filename = filename },
        ReturnFrames = frames,
        FrameDtype = dtype,
    };

    /// <summary>Int16-exact samples (k / 32768) of a clip unique to <paramref name="seed"/>: a few partials and a little noise.</summary>
    public static float[] Samples(int seed, double seconds = 2, int sampleRate = 44100)
    {
        var random = new Random(seed);
        double[] hz = [.. Enumerable.Range(0, 3).Select(_ => 80 + random.NextDouble() * 2000)];
        var samples = new float[(int)(seconds * sampleRate)];
        for (int i = 0; i < samples.Length; i++)
        {
            double t = (double)i / sampleRate;
            double x = 0.25 * Math.Sin(2 * Math.PI * hz[0] * t) + 0.2 * Math.Sin(2 * Math.PI * hz[1] * t) * Math.Exp(-t)
                + 0.1 * Math.Sin(2 * Math.PI * hz[2] * t) + 0.05 * (random.NextDouble() * 2 - 1);
            samples[i] = (float)(Math.Round(x * 32768) / 32768);
        }
        return samples;
    }

    public static byte[] Wav(int seed, double seconds = 2) => WavWriter.Write([Samples(seed, seconds)], 44100, "pcm16");

    /// <summary>The same WAV with a LIST chunk between "fmt " and "data": another header layout, the same samples.</summary>
    public static byte[] WithListChunk(byte[] wav)
    {
        byte[] info = [.. "LIST"u8, 12, 0, 0, 0, .. "INFOISFT"u8, 0, 0, 0, 0];
        int fmtEnd = 12 + 8 + BinaryPrimitives.ReadInt32LittleEndian(wav.AsSpan(16));
        byte[] result = [.. wav.AsSpan(0, fmtEnd), .. info, .. wav.AsSpan(fmtEnd)];
        BinaryPrimitives.WriteInt32LittleEndian(result.AsSpan(4), result.Length - 8);
        return result;
    }

    /// <summary>Reads a GetEmbedding stream back into one array, checking that the chunks tile it in order.</summary>
    public static async Task<(float[] Values, int Chunks, EmbeddingFrames First)> Fetch(EncoderService.EncoderServiceClient client, GetEmbeddingRequest request)
    {
        using var call = client.GetEmbedding(request);
        float[]? values = null;
        EmbeddingFrames? first = null;
        int chunks = 0, next = 0;
        await foreach (EmbeddingChunk chunk in call.ResponseStream.ReadAllAsync())
        {
            Assert.Equal((uint)next, chunk.FirstFrame);
            first ??= chunk.Frames;
            values ??= new float[chunk.TotalFrames * chunk.Frames.Width];
            EmbeddingFramesCodec.Decode(chunk.Frames).CopyTo(values, (int)(chunk.FirstFrame * chunk.Frames.Width));
            next += (int)chunk.Frames.Frames;
            chunks++;
        }
        Assert.NotNull(values);
        Assert.Equal(values.Length, next * (int)first!.Width);
        return (values, chunks, first);
    }
}
