using System.Globalization;
using Grpc.Core;
using Grpc.Health.V1;
using LLark.Common.V1;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Engine.Model;
using LLark.Encoder.Service;
using LLark.Encoder.V1;
using LLark.Tests.Encoder.Engine;
using LLark.Tests.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LLark.Tests.Encoder.Service;

/// <summary>The worker's queue, batching and cancellation, and the host's life before the model is loaded.</summary>
public sealed class EncoderWorkerTests : IDisposable
{
    private readonly string cache = Directory.CreateTempSubdirectory("llark-encoder-worker-").FullName;

    public void Dispose() => Directory.Delete(cache, recursive: true);

    private static async Task WaitForQueue(ModelHost.Loaded model, int depth)
    {
        for (int i = 0; i < 500 && model.Worker.QueueDepth != depth; i++) await Task.Delay(10);
        Assert.Equal(depth, model.Worker.QueueDepth);
    }

    [Fact]
    public async Task PastTheQueueLimitCallsGetResourceExhaustedAndClipsWaitingTogetherShareOnePass()
    {
        await using LoopbackHost host = await EncoderHarness.StartAsync(cache, new Dictionary<string, string?>
        {
            ["LLark:Encoder:MaxQueuedRequests"] = "2",
            ["LLark:Encoder:MaxBatchSize"] = "2",
        });
        var client = EncoderHarness.Client(host);
        ModelHost.Loaded model = EncoderHarness.Model(host);
        byte[] a = File.ReadAllBytes(JukeboxTiny.File("test_audio_4s.wav")), b = EncoderHarness.Wav(seed: 30, seconds: 3);

        EncoderHarness.Gate(host).Hold(true);
        var first = client.EmbedAsync(EncoderHarness.Request(a, frames: true));
        var second = client.EmbedAsync(EncoderHarness.Request(b, frames: true));
        await WaitForQueue(model, 2);
        var full = await Assert.ThrowsAsync<RpcException>(async () => await client.EmbedAsync(EncoderHarness.Request(EncoderHarness.Wav(seed: 31))));
        Assert.Equal(StatusCode.ResourceExhausted, full.StatusCode);
        Assert.True(long.Parse(full.Trailers.GetValue("grpc-retry-pushback-ms")!, CultureInfo.InvariantCulture) > 0);
        EncoderHarness.Gate(host).Hold(false);

        EmbedResponse[] done = [await first, await second];
        Assert.Equal(2, EncoderHarness.Metrics(host).ClipsEncoded);
        Assert.Equal(1, EncoderHarness.Metrics(host).Batches);

        // One forward pass for both, and each clip's frames are what the engine gives it alone.
        using JukeboxEncoder encoder = JukeboxTiny.Load();
        foreach ((byte[] clip, EmbedResponse response) in new[] { (a, done[0]), (b, done[1]) })
        {
            PreparedAudio prepared = AudioFrontEnd.Prepare(clip, 44100, encoder.Config.ContextSamples);
            float[] alone = encoder.Embed(prepared.Samples).Values;
            float[] batched = EmbeddingFramesCodec.Decode(response.Embedding);
            Assert.Equal(alone.Length, batched.Length);
            Assert.True(alone.Zip(batched).Max(p => Math.Abs(p.First - p.Second)) <= 1e-5);
        }
        Assert.False((await client.EmbedAsync(EncoderHarness.Request(EncoderHarness.Wav(seed: 31)))).Cached);
    }

    [Fact]
    public async Task ACallerThatLeavesOrRunsOutOfTimeWhileQueuedIsNotEncoded()
    {
        await using LoopbackHost host = await EncoderHarness.StartAsync(cache);
        var client = EncoderHarness.Client(host);
        ModelHost.Loaded model = EncoderHarness.Model(host);
        byte[] left = EncoderHarness.Wav(seed: 32), late = EncoderHarness.Wav(seed: 33);

        EncoderHarness.Gate(host).Hold(true);
        using var cts = new CancellationTokenSource();
        var cancelled = client.EmbedAsync(EncoderHarness.Request(left), cancellationToken: cts.Token);
        var timed = client.EmbedAsync(EncoderHarness.Request(late), deadline: DateTime.UtcNow.AddSeconds(2));
        await WaitForQueue(model, 2);
        cts.Cancel();
        Assert.Equal(StatusCode.Cancelled, (await Assert.ThrowsAsync<RpcException>(async () => await cancelled)).StatusCode);
        Assert.Equal(StatusCode.DeadlineExceeded, (await Assert.ThrowsAsync<RpcException>(async () => await timed)).StatusCode);
        EncoderHarness.Gate(host).Hold(false);

        Assert.False((await client.EmbedAsync(EncoderHarness.Request(EncoderHarness.Wav(seed: 34, seconds: 1)))).Cached);
        Assert.Equal(1, EncoderHarness.Metrics(host).ClipsEncoded);
        Assert.False((await client.EmbedAsync(EncoderHarness.Request(left))).Cached);
        Assert.Equal(2, EncoderHarness.Metrics(host).ClipsEncoded);
    }

    [Fact]
    public async Task HealthIsNotServingAndEmbedIsUnavailableUntilTheModelIsLoaded()
    {
        WebApplication app = EncoderServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Encoder:ModelPath"] = EncoderHarness.ModelPath,
            ["LLark:Encoder:Cache:Directory"] = cache,
        }));
        var health = app.Services.GetRequiredService<Grpc.HealthCheck.HealthServiceImpl>();
        var check = await health.Check(new HealthCheckRequest { Service = EncoderServiceHost.GrpcServiceName }, null!);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, check.Status);
        var e = await Assert.ThrowsAsync<RpcException>(() => app.Services.GetRequiredService<EmbeddingService>().EmbedAsync(EncoderHarness.Wav(seed: 35), null, default));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);

        await using LoopbackHost host = await LoopbackHost.StartAsync(app);
        await EncoderHarness.WaitServing(host);
        Assert.False((await EncoderHarness.Client(host).EmbedAsync(EncoderHarness.Request(EncoderHarness.Wav(seed: 35, seconds: 1)))).Cached);
    }

    [Fact]
    public async Task WeightsThatCannotLoadKeepHealthNotServingAndStopTheHost()
    {
        using var empty = new global::LLark.Tests.Checkpoints.TempDirectory();
        await LoopbackHost.AssertStopsItselfWith(EncoderServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Encoder:ModelPath"] = empty.Path,
            ["LLark:Encoder:Cache:Directory"] = cache,
        })), exitCode: 3);
    }

    [Theory]
    [InlineData("Fps", "0")]
    [InlineData("DType", "fp8")]
    [InlineData("ExtractionPath", "sideways")]
    [InlineData("ModelPath", "/no/such/folder")]
    [InlineData("ModelName", "a/b")]
    [InlineData("MaxQueuedRequests", "0")]
    public async Task BadSettingsStopTheHostAtStartNamingTheSetting(string setting, string value)
    {
        var settings = new Dictionary<string, string?>
        {
            ["LLark:Encoder:ModelPath"] = EncoderHarness.ModelPath,
            ["LLark:Encoder:Cache:Directory"] = cache,
            [$"LLark:Encoder:{setting}"] = value,
        };
        WebApplication app = EncoderServiceHost.Build([], LoopbackHost.Settings(settings));
        await using (app)
        {
            var e = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
            Assert.Contains(setting, e.Message, StringComparison.Ordinal);
        }
    }
}
