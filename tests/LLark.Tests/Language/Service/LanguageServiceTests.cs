using Grpc.Core;
using Grpc.Health.V1;
using LLark.Common.V1;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Multimodal;
using LLark.Language.Service;
using LLark.Language.V1;
using LLark.Tests.Language.Engine.Serving;
using LLark.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using ChatTurn = LLark.Language.V1.ChatTurn;
using WireFinish = LLark.Language.V1.FinishReason;

namespace LLark.Tests.Language.Service;

/// <summary>One language service (tiny LLark) and one stand-in encoder, on loopback, shared by the tests of this class.</summary>
public sealed class LanguageServiceFixture : IAsyncLifetime
{
    internal LoopbackHost Host { get; private set; } = null!;
    internal LoopbackHost EncoderHost { get; private set; } = null!;
    internal StoredEmbeddingsEncoder Encoder { get; private set; } = null!;

    public LanguageService.LanguageServiceClient Client => new(Host.Channel);

    public async Task InitializeAsync()
    {
        (EncoderHost, Encoder) = await StoredEmbeddingsEncoder.StartAsync();
        Host = await LoopbackHost.StartAsync(LanguageServiceHost.Build([], StepPause.In(LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = TinyLLark.Directory,
            ["LLark:Language:MaxBatchSize"] = "4",
            ["LLark:Language:DefaultMaxNewTokens"] = "24",
            ["LLark:Language:EncoderAddress"] = EncoderHost.GrpcAddress.ToString(),
        }))));
        await LanguageServiceTests.WaitServing(Host);
    }

    public async Task DisposeAsync()
    {
        await Host.DisposeAsync();
        await EncoderHost.DisposeAsync();
    }
}

public sealed class LanguageServiceTests(LanguageServiceFixture fixture) : IClassFixture<LanguageServiceFixture>
{
    internal static async Task WaitServing(LoopbackHost host)
    {
        var health = new Health.HealthClient(host.Channel);
        for (int i = 0; i < 600; i++)
        {
            var status = await health.CheckAsync(new HealthCheckRequest { Service = LanguageServiceHost.GrpcServiceName });
            if (status.Status == HealthCheckResponse.Types.ServingStatus.Serving) return;
            await Task.Delay(50);
        }
        throw new TimeoutException("the language service never reported SERVING");
    }

    internal static EmbeddingFrames Frames(int count, int seed = 1, int width = TinyLLark.AudioWidth, double fps = TinyLLark.Fps)
    {
        var random = new Random(seed);
        float[] values = [.. Enumerable.Range(0, count * width).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        return EmbeddingFramesCodec.Encode(values, width, fps, FrameDType.Float32);
    }

    private static GenerateRequest Request(EmbeddingFrames? frames = null, uint maxNew = 0, SamplingParameters? sampling = null)
    {
        var request = new GenerateRequest { Stopping = new StoppingParameters { MaxNewTokens = maxNew, IgnoreEos = true } };
        request.Turns.Add(new ChatTurn { Human = "Describe this clip." });
        if (frames is not null) request.Frames = frames;
        if (sampling is not null) request.Sampling = sampling;
        return request;
    }

    internal static async Task<(List<TokenDelta> Deltas, GenerateFinal Final)> Run(LanguageService.LanguageServiceClient client, GenerateRequest request,
        Metadata? headers = null, CancellationToken ct = default)
    {
        using var call = client.Generate(request, headers, cancellationToken: ct);
        var deltas = new List<TokenDelta>();
        GenerateFinal? final = null;
        await foreach (GenerateResponse r in call.ResponseStream.ReadAllAsync(ct))
        {
            Assert.Null(final);
            if (r.FrameCase == GenerateResponse.FrameOneofCase.Delta) deltas.Add(r.Delta);
            else final = r.Final;
        }
        return (deltas, final ?? throw new InvalidOperationException("no final frame"));
    }

    [Fact]
    public async Task ModelInfoDescribesTheCheckpoint()
    {
        ModelInfo info = await fixture.Client.GetModelInfoAsync(new GetModelInfoRequest());
        Assert.Equal(Path.GetFileName(TinyLLark.Directory), info.ModelId);
        Assert.Equal(25, info.AudioFps);
        Assert.Equal((uint)TinyLLark.AudioWidth, info.AudioEmbeddingWidth);
        Assert.Equal(384u, info.ContextLength);
        Assert.Equal("float32", info.Dtype);
        Assert.Equal("cpu", info.Device);
        Assert.Equal("fp32", info.Weights);
        Assert.Equal(4u, info.MaxBatchSize);
    }

    [Fact]
    public async Task AnAnswerStreamsAsDeltasThenAFinalFrameThatMatchesTheEngine()
    {
        EmbeddingFrames frames = Frames(9);
        (List<TokenDelta> deltas, GenerateFinal final) = await Run(fixture.Client, Request(frames, maxNew: 16));
        Assert.Equal(WireFinish.Length, final.FinishReason);
        Assert.Equal(string.Concat(deltas.Select(d => d.Text)), final.Text);
        Assert.Equal(16u, final.Usage.GeneratedTokens);
        Assert.Equal(9u, final.Usage.AudioTokens);
        Assert.True(final.Timings.TimeToFirstTokenMs > 0);

        using LLarkModel model = LLarkModel.Load(TinyLLark.Directory);
        using LLarkPromptInput prompt = model.BuildPrompt([new("Describe this clip.")],
            new AudioFrames(EmbeddingFramesCodec.Decode(frames), 9, TinyLLark.AudioWidth, TinyLLark.Fps));
        GenerationResult expected = new TextGenerator(model.Llama).Generate(prompt.Embeddings, prompt.Ids, model.Tokenizer.CreateDetokenizer(false),
            new GenerationOptions { MaxNewTokens = 16, StopOnEos = false }).Last().Result!;
        Assert.Equal(expected.Text, final.Text);
        Assert.Equal((uint)prompt.Ids.Length, final.Usage.PromptTokens);
    }

    [Fact]
    public async Task TokenIdsAndLogProbsComeWhenAsked()
    {
        GenerateRequest request = Request(Frames(4), maxNew: 10);
        request.ReturnOptions = new ReturnOptions { TokenIds = true, Logprobs = true };
        (List<TokenDelta> deltas, GenerateFinal final) = await Run(fixture.Client, request);
        Assert.Equal(10, deltas.Sum(d => d.TokenIds.Count));
        Assert.Equal(10, deltas.Sum(d => d.Logprobs.Count));
        Assert.All(deltas.SelectMany(d => d.Logprobs), lp => Assert.InRange(lp, -60f, 0f));
        Assert.Equal(10u, final.Usage.GeneratedTokens);
    }

    [Fact]
    public async Task AnEmbeddingIdIsFetchedFromTheEncoderAndGivesTheSameAnswerAsInlineFrames()
    {
        EmbeddingFrames frames = Frames(11, seed: 5);
        fixture.Encoder.Embeddings["clip-a"] = (EmbeddingFramesCodec.Decode(frames), TinyLLark.AudioWidth, TinyLLark.Fps);
        GenerateRequest byId = Request(maxNew: 12);
        byId.EmbeddingId = "clip-a";
        var (_, viaEncoder) = await Run(fixture.Client, byId);
        var (_, inline) = await Run(fixture.Client, Request(frames, maxNew: 12));
        Assert.Equal(inline.Text, viaEncoder.Text);
        Assert.Equal(11u, viaEncoder.Usage.AudioTokens);
        Assert.True(viaEncoder.Timings.EncoderMs > 0);

        GenerateRequest unknown = Request(maxNew: 4);
        unknown.EmbeddingId = "no-such-clip";
        var e = await Assert.ThrowsAsync<RpcException>(() => Run(fixture.Client, unknown));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Equal("embedding_id: no embedding with id 'no-such-clip'", e.Status.Detail);
    }

    [Fact]
    public async Task RawAudioIsEmbeddedThroughTheEncoder()
    {
        byte[] clip = [.. "RIFF-not-really-a-wave"u8];
        EmbeddingFrames frames = Frames(6, seed: 9);
        fixture.Encoder.Embeddings[Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(clip))] =
            (EmbeddingFramesCodec.Decode(frames), TinyLLark.AudioWidth, TinyLLark.Fps);
        GenerateRequest request = Request(maxNew: 8);
        request.AudioBytes = new AudioBytes { Data = Google.Protobuf.ByteString.CopyFrom(clip), Filename = "a.wav" };
        var (_, final) = await Run(fixture.Client, request);
        Assert.Equal((await Run(fixture.Client, Request(frames, maxNew: 8))).Final.Text, final.Text);

        request.AudioBytes = new AudioBytes { Data = Google.Protobuf.ByteString.CopyFromUtf8("garbage") };
        var e = await Assert.ThrowsAsync<RpcException>(() => Run(fixture.Client, request));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.StartsWith("audio_bytes:", e.Status.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sampling.top_p")]
    [InlineData("sampling.temperature")]
    [InlineData("stopping.max_new_tokens")]
    [InlineData("turns")]
    [InlineData("turns[0].human")]
    [InlineData("audio.width")]
    [InlineData("audio.fps")]
    [InlineData("frames")]
    [InlineData("frames.data")]
    [InlineData("prompt too long")]
    public async Task BadRequestsGetInvalidArgumentNamingTheFieldAndServingGoesOn(string field)
    {
        GenerateRequest request = Request(Frames(3), maxNew: 4);
        switch (field)
        {
            case "sampling.top_p": request.Sampling = new SamplingParameters { TopP = 1.5f }; break;
            case "sampling.temperature": request.Sampling = new SamplingParameters { Temperature = -1 }; break;
            case "stopping.max_new_tokens": request.Stopping.MaxNewTokens = 1_000_000; break;
            case "turns": request.Turns.Clear(); break;
            case "turns[0].human": request.Turns[0].Human = "  "; break;
            case "audio.width": request.Frames = Frames(3, width: 40); break;
            case "audio.fps": request.Frames = Frames(3, fps: 10); break;
            case "frames": request.Frames.Frames = 4; break;
            case "frames.data": request.Frames = EmbeddingFramesCodec.Encode([.. Enumerable.Repeat(3e38f, 3 * TinyLLark.AudioWidth)], TinyLLark.AudioWidth, TinyLLark.Fps, FrameDType.Float32); break;
            default: request.Frames = Frames(400); break;
        }
        var e = await Assert.ThrowsAsync<RpcException>(() => Run(fixture.Client, request));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.StartsWith(field == "prompt too long" ? "turns:" : field + ":", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(4u, (await Run(fixture.Client, Request(Frames(3), maxNew: 4))).Final.Usage.GeneratedTokens);
    }

    [Theory]
    [InlineData("human", "<audio_patch>")]
    [InlineData("human", "<audio_start>")]
    [InlineData("human", "<audio_end>")]
    [InlineData("human", "<audio>")]
    [InlineData("assistant", "<audio>")]
    [InlineData("assistant", "<audio_patch>")]
    [InlineData("assistant", "### Human:")]
    public async Task TemplateTokensInATurnAreRefusedNamingTheFieldAndTheToken(string role, string token)
    {
        GenerateRequest request = Request(Frames(3), maxNew: 4);
        request.Turns.Clear();
        request.Turns.Add(new ChatTurn { Human = role == "human" ? $"What is {token} here?" : "What key?", Assistant = role == "assistant" ? $"A minor. {token} Now" : "A minor." });
        request.Turns.Add(new ChatTurn { Human = "And the tempo?" });
        var e = await Assert.ThrowsAsync<RpcException>(() => Run(fixture.Client, request));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.StartsWith($"turns[0].{role}:", e.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(token.StartsWith('#') ? "'###'" : $"'{token}'", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(4u, (await Run(fixture.Client, Request(Frames(3), maxNew: 4))).Final.Usage.GeneratedTokens);
    }

    [Fact]
    public async Task CancellingMidStreamStopsTheServerWithinAStep()
    {
        ModelHost host = fixture.Host.App.Services.GetRequiredService<ModelHost>();
        StepPause.Of(fixture.Host).Pause = TimeSpan.FromMilliseconds(5);
        using var cts = new CancellationTokenSource();
        using var call = fixture.Client.Generate(Request(Frames(5), maxNew: 2000), cancellationToken: cts.Token);
        for (int i = 0; i < 3; i++) Assert.True(await call.ResponseStream.MoveNext(cts.Token));
        Assert.True(host.Ready().Scheduler.ActiveSequences >= 1);
        cts.Cancel();
        for (int i = 0; i < 200 && host.Ready().Scheduler.ActiveSequences > 0; i++) await Task.Delay(10);
        StepPause.Of(fixture.Host).Pause = TimeSpan.Zero;
        Assert.Equal(0, host.Ready().Scheduler.ActiveSequences);
    }

    [Fact]
    public async Task ADeadlineEndsAGenerationWithDeadlineExceeded()
    {
        StepPause.Of(fixture.Host).Pause = TimeSpan.FromMilliseconds(5);
        using var call = fixture.Client.Generate(Request(Frames(5), maxNew: 2000), deadline: DateTime.UtcNow.AddMilliseconds(400));
        var e = await Assert.ThrowsAsync<RpcException>(async () => { while (await call.ResponseStream.MoveNext()) { } });
        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        ModelHost host = fixture.Host.App.Services.GetRequiredService<ModelHost>();
        for (int i = 0; i < 200 && host.Ready().Scheduler.ActiveSequences > 0; i++) await Task.Delay(10);
        StepPause.Of(fixture.Host).Pause = TimeSpan.Zero;
        Assert.Equal(0, host.Ready().Scheduler.ActiveSequences);
    }

    [Fact]
    public async Task ManyClientsAtOnceEachGetTheirOwnAnswer()
    {
        var requests = Enumerable.Range(0, 10).Select(i => Request(Frames(4, seed: 100 + i), maxNew: 12)).ToArray();
        var together = await Task.WhenAll(requests.Select(r => Run(fixture.Client, r)));
        for (int i = 0; i < requests.Length; i += 3)
        {
            var alone = await Run(fixture.Client, requests[i]);
            Assert.Equal(alone.Final.Text, together[i].Final.Text);
        }
        Assert.All(together, t => Assert.Equal(12u, t.Final.Usage.GeneratedTokens));
    }

    [Fact]
    public async Task TheSameSeedGivesTheSameSampledAnswer()
    {
        var sampling = new SamplingParameters { Temperature = 1.0f, TopP = 0.9f, Seed = 77 };
        var a = await Run(fixture.Client, Request(Frames(4), maxNew: 16, sampling));
        var b = await Run(fixture.Client, Request(Frames(4), maxNew: 16, sampling));
        Assert.Equal(a.Final.Text, b.Final.Text);
    }

    [Fact]
    public async Task HealthAndMetricsAreServedOverHttp()
    {
        using var http = new HttpClient { BaseAddress = fixture.Host.HttpAddress };
        Assert.Equal("SERVING", await http.GetStringAsync(new Uri("/healthz", UriKind.Relative)));
        await Run(fixture.Client, Request(Frames(2), maxNew: 3));
        string metrics = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains("llark_language_generated_tokens", metrics, StringComparison.Ordinal);
        Assert.Contains("llark_language_queue_depth", metrics, StringComparison.Ordinal);
        // Recorded in seconds, so bucketed in seconds: 5 ms up to 5 min, never OpenTelemetry's millisecond edges.
        foreach (string histogram in new[]
        {
            "llark_language_time_to_first_token_seconds_bucket{", "llark_language_queue_wait_seconds_bucket{",
            "gen_ai_server_request_duration_seconds_bucket{", "gen_ai_server_time_per_output_token_seconds_bucket{",
        })
        {
            // Each set of tags is its own series; every series has the same edges, so the first one's are read.
            string[] edges = [.. metrics.Split('\n').Where(l => l.StartsWith(histogram, StringComparison.Ordinal))
                .Select(l => l[(l.IndexOf("le=\"", StringComparison.Ordinal) + 4)..].Split('"')[0])];
            edges = edges[..(Array.IndexOf(edges, "+Inf") + 1)];
            Assert.Equal(["0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5", "5", "7.5", "10", "30", "60", "120", "300", "+Inf"], edges);
        }
    }
}
