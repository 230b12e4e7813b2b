using System.Net;
using System.Net.Sockets;
using Grpc.Core;
using Grpc.Health.V1;
using LLark.Common.V1;
using LLark.Language.Service;
using LLark.Language.V1;
using LLark.ServiceDefaults;
using LLark.Tests.Language.Engine.Serving;
using LLark.Tests.TestSupport;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace LLark.Tests.Language.Service;

/// <summary>Hosts with their own settings: a full queue, an encoder that is down and comes back, a checkpoint that will not load.</summary>
public sealed class LanguageServiceLimitsTests
{
    private static GenerateRequest Request(uint maxNew, EmbeddingFrames? frames = null)
    {
        var request = new GenerateRequest { Stopping = new StoppingParameters { MaxNewTokens = maxNew, IgnoreEos = true } };
        request.Turns.Add(new LLark.Language.V1.ChatTurn { Human = "What key is it in?" });
        if (frames is not null) request.Frames = frames;
        return request;
    }


    /// <summary>A language service whose encoder is at <paramref name="port"/> on loopback, SERVING.</summary>
    private static async Task<LoopbackHost> WithEncoderAt(int port)
    {
        LoopbackHost host = await LoopbackHost.StartAsync(LanguageServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = TinyLLark.Directory,
            ["LLark:Language:EncoderAddress"] = $"http://127.0.0.1:{port}",
        })));
        await LanguageServiceTests.WaitServing(host);
        return host;
    }

    [Fact]
    public async Task PastTheQueueLimitCallsGetResourceExhaustedWithARetryHint()
    {
        await using LoopbackHost host = await LoopbackHost.StartAsync(LanguageServiceHost.Build([], StepPause.In(LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = TinyLLark.Directory,
            ["LLark:Language:MaxBatchSize"] = "1",
            ["LLark:Language:MaxQueuedRequests"] = "1",
        }))));
        await LanguageServiceTests.WaitServing(host);
        StepPause.Of(host).Pause = TimeSpan.FromMilliseconds(5);
        var client = new LanguageService.LanguageServiceClient(host.Channel);
        using var cts = new CancellationTokenSource();
        using var running = client.Generate(Request(2000, LanguageServiceTests.Frames(3)), cancellationToken: cts.Token);
        Assert.True(await running.ResponseStream.MoveNext(cts.Token));
        Task<(List<TokenDelta>, GenerateFinal Final)> queued = LanguageServiceTests.Run(client, Request(3, LanguageServiceTests.Frames(3)));
        ModelHost model = host.App.Services.GetRequiredService<ModelHost>();
        for (int i = 0; i < 200 && model.Ready().Scheduler.QueueDepth == 0; i++) await Task.Delay(10);

        var e = await Assert.ThrowsAsync<RpcException>(() => LanguageServiceTests.Run(client, Request(3, LanguageServiceTests.Frames(3))));
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.True(long.Parse(e.Trailers.GetValue("grpc-retry-pushback-ms")!, System.Globalization.CultureInfo.InvariantCulture) > 0);

        cts.Cancel();
        Assert.Equal(3u, (await queued.WaitAsync(TimeSpan.FromSeconds(60))).Final.Usage.GeneratedTokens);
    }

    [Fact]
    public async Task AnEncoderThatIsDownGivesUnavailableAndServingResumesWhenItReturns()
    {
        int encoderPort = LoopbackHost.FreePort();
        await using LoopbackHost host = await WithEncoderAt(encoderPort);
        var client = new LanguageService.LanguageServiceClient(host.Channel);
        GenerateRequest byId = Request(4);
        byId.EmbeddingId = "clip-b";

        var e = await Assert.ThrowsAsync<RpcException>(() => LanguageServiceTests.Run(client, byId));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains("encoder", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(4u, (await LanguageServiceTests.Run(client, Request(4, LanguageServiceTests.Frames(2)))).Final.Usage.GeneratedTokens);

        (LoopbackHost encoderHost, StoredEmbeddingsEncoder encoder) = await StoredEmbeddingsEncoder.StartAsync(encoderPort);
        await using (encoderHost)
        {
            EmbeddingFrames frames = LanguageServiceTests.Frames(5);
            encoder.Embeddings["clip-b"] = (EmbeddingFramesCodec.Decode(frames), TinyLLark.AudioWidth, TinyLLark.Fps);
            GenerateFinal final = null!;
            for (int attempt = 0; attempt < 50; attempt++)
            {
                try
                {
                    final = (await LanguageServiceTests.Run(client, byId)).Final;
                    break;
                }
                catch (RpcException retry) when (retry.StatusCode == StatusCode.Unavailable && attempt < 49)
                {
                    await Task.Delay(100);
                }
            }
            Assert.Equal(5u, final.Usage.AudioTokens);
        }
    }

    [Fact]
    public async Task AnEncoderBackAfterALongOutageIsReachedWithinTwoSecondsOnEveryPath()
    {
        int encoderPort = LoopbackHost.FreePort();
        (LoopbackHost encoderHost, StoredEmbeddingsEncoder encoder) = await StoredEmbeddingsEncoder.StartAsync(encoderPort);
        encoder.Embeddings["clip-c"] = (EmbeddingFramesCodec.Decode(LanguageServiceTests.Frames(3)), TinyLLark.AudioWidth, TinyLLark.Fps);
        byte[] clip = [.. "RIFF-outage-clip"u8];
        encoder.Embeddings[Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(clip))] =
            (EmbeddingFramesCodec.Decode(LanguageServiceTests.Frames(2)), TinyLLark.AudioWidth, TinyLLark.Fps);
        await using LoopbackHost host = await WithEncoderAt(encoderPort);
        var client = new LanguageService.LanguageServiceClient(host.Channel);
        GenerateRequest byId = Request(2);
        byId.EmbeddingId = "clip-c";
        GenerateRequest byAudio = Request(2);
        byAudio.AudioBytes = new AudioBytes { Data = Google.Protobuf.ByteString.CopyFrom(clip) };
        Assert.Equal(3u, (await LanguageServiceTests.Run(client, byId)).Final.Usage.AudioTokens);

        // Twenty seconds of failing calls: long enough for gRPC's default back-off (1 s growing 1.6x a try, with jitter)
        // to have grown past the patience below, so only the service's own bound on it (1 s) lets the test pass.
        await encoderHost.DisposeAsync();
        var outage = System.Diagnostics.Stopwatch.StartNew();
        while (outage.Elapsed < TimeSpan.FromSeconds(20))
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => LanguageServiceTests.Run(client, byId));
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
            await Task.Delay(250);
        }

        (encoderHost, _) = await StoredEmbeddingsEncoder.StartAsync(encoderPort, encoder: encoder);
        await using (encoderHost)
        {
            var back = System.Diagnostics.Stopwatch.StartNew();
            GenerateFinal? healed = null;
            while (healed is null)
            {
                try
                {
                    healed = (await LanguageServiceTests.Run(client, byId)).Final;
                }
                // Two seconds is the promise; the patience is twice that, because on a machine loaded by the rest of the
                // suite (or a second suite beside it) the reconnect itself has taken more than two seconds of wall time.
                catch (RpcException retry) when (retry.StatusCode == StatusCode.Unavailable && back.Elapsed < TimeSpan.FromSeconds(4))
                {
                    await Task.Delay(50);
                }
            }
            Assert.Equal(3u, healed.Usage.AudioTokens);
            Assert.Equal(2u, (await LanguageServiceTests.Run(client, byAudio)).Final.Usage.AudioTokens);
        }
    }

    [Fact]
    public async Task WithAnInternalTokenCallsWithoutItAreUnauthenticatedButHealthIsOpen()
    {
        const string Token = "internal-token-0123456789";
        await using LoopbackHost host = await LoopbackHost.StartAsync(LanguageServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = TinyLLark.Directory,
            ["LLark:Internal:Token"] = Token,
        })));
        await LanguageServiceTests.WaitServing(host);
        var client = new LanguageService.LanguageServiceClient(host.Channel);

        var missing = await Assert.ThrowsAsync<RpcException>(async () => await client.GetModelInfoAsync(new GetModelInfoRequest()));
        Assert.Equal(StatusCode.Unauthenticated, missing.StatusCode);
        var wrong = await Assert.ThrowsAsync<RpcException>(() =>
            LanguageServiceTests.Run(client, Request(2, LanguageServiceTests.Frames(2)), headers: new Metadata { { InternalTokenOptions.Header, "not-the-token-0123456789" } }));
        Assert.Equal(StatusCode.Unauthenticated, wrong.StatusCode);
        var reflection = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            // Nothing is written: the answer does not wait for a request, and a write could race it.
            using var call = new Grpc.Reflection.V1Alpha.ServerReflection.ServerReflectionClient(host.Channel).ServerReflectionInfo();
            await call.ResponseStream.MoveNext();
        });
        Assert.Equal(StatusCode.Unimplemented, reflection.StatusCode);

        var with = new Metadata { { InternalTokenOptions.Header, Token } };
        Assert.Equal(2u, (await LanguageServiceTests.Run(client, Request(2, LanguageServiceTests.Frames(2)), headers: with)).Final.Usage.GeneratedTokens);
    }

    [Fact]
    public async Task BoundBeyondLoopbackWithoutAnInternalTokenTheServiceDoesNotStart()
    {
        await using Microsoft.AspNetCore.Builder.WebApplication app = LanguageServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = TinyLLark.Directory,
            ["LLark:Listen:Address"] = "0.0.0.0",
        }));
        var e = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("LLark:Internal:Token", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ACheckpointThatCannotLoadKeepsHealthNotServingAndStopsTheHost()
    {
        using var dir = new global::LLark.Tests.Checkpoints.TempDirectory();
        File.WriteAllText(Path.Combine(dir.Path, "config.json"), "{ not json");
        await LoopbackHost.AssertStopsItselfWith(LanguageServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = dir.Path,
        })), exitCode: 3);
    }

    [Fact]
    public async Task HealthIsNotServingUntilTheModelIsLoaded()
    {
        var app = LanguageServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = TinyLLark.Directory,
        }));
        // Before start nothing is loaded: the health service's answer is NOT_SERVING for the server and the service.
        var health = app.Services.GetRequiredService<Grpc.HealthCheck.HealthServiceImpl>();
        var check = await health.Check(new HealthCheckRequest { Service = LanguageServiceHost.GrpcServiceName }, null!);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, check.Status);
        await using LoopbackHost host = await LoopbackHost.StartAsync(app);
        await LanguageServiceTests.WaitServing(host);
    }
}
