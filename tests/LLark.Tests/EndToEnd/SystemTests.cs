using System.Diagnostics;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Language.Service;
using LLark.Language.V1;
using LLark.Tests.Checkpoints;
using LLark.Tests.Cli;
using LLark.Tests.Encoder.Service;
using LLark.Tests.Gateway;
using LLark.Tests.Language.Engine.Serving;
using LLark.Tests.Language.Service;
using LLark.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace LLark.Tests.EndToEnd;

/// <summary>
/// The whole system on loopback as tools/run.sh starts it, on the tiny models whose numbers the tests pin: the real
/// encoder service (the tiny Jukebox, a durable disk cache), the real language service (the untrained tiny LLark) and
/// the real gateway with keys. Every call below goes through the gateway. DemoSystemTests runs the main job itself on
/// the bundled demo models.
/// </summary>
public sealed class SystemFixture : IAsyncLifetime, IDisposable
{
    internal const string LimitedKey = "e2e-limited-0123456789";

    /// <summary>As tools/run.sh gives all three: the model services take calls from the gateway only.</summary>
    internal const string InternalToken = "e2e-internal-token-0123456789";
    private readonly TempDirectory cache = new();

    internal int EncoderPort { get; } = LoopbackHost.FreePort();
    internal LoopbackHost Encoder { get; set; } = null!;
    internal LoopbackHost Language { get; private set; } = null!;
    internal LoopbackHost Gateway { get; private set; } = null!;
    internal string CacheDirectory => cache.Path;


    internal Task<LoopbackHost> StartEncoder() => EncoderHarness.StartAsync(cache.Path, new Dictionary<string, string?>
    {
        ["LLark:Encoder:ModelPath"] = Path.Combine(RepoPaths.Root, "models", "jukebox-tiny"),
        ["LLark:Listen:GrpcPort"] = EncoderPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["LLark:Internal:Token"] = InternalToken,
    });

    public async Task InitializeAsync()
    {
        Encoder = await StartEncoder();
        Language = await LoopbackHost.StartAsync(LanguageServiceHost.Build([], StepPause.In(LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = TinyLLark.Directory,
            ["LLark:Language:EncoderAddress"] = Encoder.GrpcAddress.ToString(),
            ["LLark:Language:DefaultMaxNewTokens"] = "16",
            ["LLark:Internal:Token"] = InternalToken,
        }))));
        await LanguageServiceTests.WaitServing(Language);
        var settings = GatewayTestHost.Destinations(Language.GrpcAddress, Encoder.GrpcAddress);
        settings["LLark:Gateway:ApiKeys:1:Name"] = "limited";
        settings["LLark:Gateway:ApiKeys:1:Sha256"] = GatewayTestHost.Sha256Hex(LimitedKey);
        settings["LLark:Gateway:ApiKeys:1:RequestsPerSecond"] = "0.1";
        settings["LLark:Gateway:ApiKeys:1:Burst"] = "2";
        settings["LLark:Internal:Token"] = InternalToken;
        Gateway = await LoopbackHost.StartAsync(GatewayTestHost.Build(settings));
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Language.DisposeAsync();
        await Encoder.DisposeAsync();
    }

    public void Dispose() => cache.Dispose();
}

public sealed class SystemTests(SystemFixture system) : IClassFixture<SystemFixture>
{
    private static readonly Metadata Key = GatewayTestHost.Bearer(GatewayTestHost.MainKey);

    private EncoderService.EncoderServiceClient Encoder => new(system.Gateway.Channel);

    private LanguageService.LanguageServiceClient Language => new(system.Gateway.Channel);

    private static GenerateRequest Ask(string question, uint maxNew = 12)
    {
        var request = new GenerateRequest { Stopping = new StoppingParameters { MaxNewTokens = maxNew, IgnoreEos = true } };
        request.Turns.Add(new LLark.Language.V1.ChatTurn { Human = question });
        return request;
    }

    private static async Task<GenerateFinal> Run(LanguageService.LanguageServiceClient client, GenerateRequest request, Metadata? headers = null)
    {
        using var call = client.Generate(request, headers ?? Key);
        GenerateFinal? final = null;
        var text = new System.Text.StringBuilder();
        await foreach (GenerateResponse r in call.ResponseStream.ReadAllAsync())
        {
            if (r.FrameCase == GenerateResponse.FrameOneofCase.Final) final = r.Final;
            else text.Append(r.Delta.Text);
        }
        Assert.Equal(text.ToString(), final!.Text);
        return final;
    }

    private static AudioBytes Clip(int seed) => new() { Data = ByteString.CopyFrom(EncoderHarness.Wav(seed, seconds: 3)), Filename = $"clip-{seed}.wav" };

    [Fact]
    public async Task EmbedOnceThenAskSeveralQuestionsById()
    {
        EmbedResponse first = await Encoder.EmbedAsync(new EmbedRequest { Audio = Clip(1) }, Key);
        Assert.False(first.Cached);
        EmbedResponse again = await Encoder.EmbedAsync(new EmbedRequest { Audio = Clip(1) }, Key);
        Assert.True(again.Cached);
        Assert.Equal(first.EmbeddingId, again.EmbeddingId);

        var answers = new List<GenerateFinal>();
        foreach (string q in new[] { "Describe this clip.", "What key is it in?", "What is the tempo?", "Describe this clip." })
        {
            GenerateRequest request = Ask(q);
            request.EmbeddingId = first.EmbeddingId;
            answers.Add(await Run(Language, request));
        }
        Assert.All(answers, a => Assert.Equal(first.Frames, a.Usage.AudioTokens));
        // Greedy decoding of the same question about the same cached clip answers the same.
        Assert.Equal(answers[0].Text, answers[3].Text);
        Assert.NotEqual(answers[0].Text, answers[1].Text);
    }

    [Fact]
    public async Task AskingWithRawAudioAnswersAsAskingById()
    {
        GenerateRequest raw = Ask("What instruments are playing?");
        raw.AudioBytes = Clip(2);
        GenerateFinal viaAudio = await Run(Language, raw);
        EmbedResponse embedded = await Encoder.EmbedAsync(new EmbedRequest { Audio = Clip(2) }, Key);
        Assert.True(embedded.Cached);
        GenerateRequest byId = Ask("What instruments are playing?");
        byId.EmbeddingId = embedded.EmbeddingId;
        Assert.Equal(viaAudio.Text, (await Run(Language, byId)).Text);
    }

    [Fact]
    public async Task CancellingMidStreamStopsTheServer()
    {
        EmbedResponse embedded = await Encoder.EmbedAsync(new EmbedRequest { Audio = Clip(3) }, Key);
        GenerateRequest request = Ask("Describe this clip at length.", maxNew: 300);
        request.EmbeddingId = embedded.EmbeddingId;
        var scheduler = system.Language.App.Services.GetRequiredService<ModelHost>().Ready().Scheduler;
        StepPause.Of(system.Language).Pause = TimeSpan.FromMilliseconds(5);
        using var cts = new CancellationTokenSource();
        using var call = Language.Generate(request, Key, cancellationToken: cts.Token);
        for (int i = 0; i < 3; i++) Assert.True(await call.ResponseStream.MoveNext(cts.Token));
        Assert.Equal(1, scheduler.ActiveSequences);
        cts.Cancel();
        for (int i = 0; i < 300 && scheduler.ActiveSequences > 0; i++) await Task.Delay(10);
        StepPause.Of(system.Language).Pause = TimeSpan.Zero;
        Assert.Equal(0, scheduler.ActiveSequences);
    }

    [Fact]
    public async Task AWrongKeyIsRefusedAtTheGateway()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => Encoder.EmbedAsync(new EmbedRequest { Audio = Clip(4) },
            GatewayTestHost.Bearer("not-a-key")).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, e.StatusCode);
        var none = await Assert.ThrowsAsync<RpcException>(() => Language.GetModelInfoAsync(new GetModelInfoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, none.StatusCode);
    }

    [Fact]
    public async Task OverTheLimitIsRefusedWithAHint()
    {
        var limited = GatewayTestHost.Bearer(SystemFixture.LimitedKey);
        await Language.GetModelInfoAsync(new GetModelInfoRequest(), limited);
        await Language.GetModelInfoAsync(new GetModelInfoRequest(), limited);
        var e = await Assert.ThrowsAsync<RpcException>(() => Language.GetModelInfoAsync(new GetModelInfoRequest(), limited).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.NotNull(e.Trailers.GetValue("grpc-retry-pushback-ms"));
    }

    [Fact]
    public async Task TheEncoderDownGivesUnavailableAndItsReturnRecoversFromTheDiskCache()
    {
        EmbedResponse embedded = await Encoder.EmbedAsync(new EmbedRequest { Audio = Clip(5) }, Key);
        await system.Encoder.DisposeAsync();
        try
        {
            GenerateRequest raw = Ask("What key?");
            raw.AudioBytes = Clip(6);
            var e = await Assert.ThrowsAsync<RpcException>(() => Run(Language, raw));
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        }
        finally
        {
            system.Encoder = await system.StartEncoder();
        }
        GenerateRequest byId = Ask("What key?");
        byId.EmbeddingId = embedded.EmbeddingId;
        GenerateFinal final = null!;
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                final = await Run(Language, byId);
                break;
            }
            catch (RpcException retry) when (retry.StatusCode == StatusCode.Unavailable && attempt < 50)
            {
                await Task.Delay(100);
            }
        }
        Assert.Equal(embedded.Frames, final.Usage.AudioTokens);
    }

    [Fact]
    public void TheCliAsksAboutAClipThroughTheGateway()
    {
        using var dir = new TempDirectory();
        string clip = dir.File("clip.wav");
        File.WriteAllBytes(clip, EncoderHarness.Wav(7, seconds: 2));
        var output = LlarkProcess.Run("ask", clip, "Describe this clip.", "--max-new-tokens", "8",
            "--address", system.Gateway.GrpcAddress.ToString(), "--api-key", GatewayTestHost.MainKey, "--json");
        Assert.True(output.ExitCode == 0, output.Stderr);
        JsonElement final = JsonDocument.Parse(output.Stdout).RootElement;
        Assert.Equal(8, final.GetProperty("usage").GetProperty("generatedTokens").GetInt32());
        var refused = LlarkProcess.Run("ask", clip, "Hi?", "--address", system.Gateway.GrpcAddress.ToString(), "--api-key", "wrong");
        Assert.Equal(6, refused.ExitCode);
    }

    [Fact]
    public void ThePythonClientPackageInstallsShipsCurrentStubsAndStreamsThroughTheGateway()
    {
        using var dir = new TempDirectory();
        string package = Path.Combine(RepoPaths.Root, "clients", "python");
        // Installed from a copy: a build writes its own folders beside the sources.
        string source = dir.File("src"), site = dir.File("site");
        foreach (string file in Directory.GetFiles(package, "*", SearchOption.AllDirectories).Where(f => !f.Contains("__pycache__", StringComparison.Ordinal)))
        {
            string target = Path.Combine(source, Path.GetRelativePath(package, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        (int code, string stdout, string stderr) = Python(dir.Path, null, "-m", "pip", "install", "--quiet", "--no-index", "--no-build-isolation", "--no-deps", "--target", site, source);
        Assert.True(code == 0, stderr);

        // The shipped stubs are what the protos generate now.
        string generated = dir.File("generated");
        Directory.CreateDirectory(generated);
        string protos = Path.Combine(RepoPaths.Root, "protos");
        string[] files = ["llark/common/v1/common.proto", "llark/encoder/v1/encoder.proto", "llark/language/v1/language.proto"];
        (code, _, stderr) = Python(dir.Path, null, ["-m", "grpc_tools.protoc", "-I", protos, "--python_out=" + generated, "--grpc_python_out=" + generated,
            .. files.Select(f => Path.Combine(protos, f))]);
        Assert.True(code == 0, stderr);
        string[] stubs = [.. Directory.GetFiles(generated, "*.py", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(generated, f)).Order(StringComparer.Ordinal)];
        Assert.Equal(6, stubs.Length);
        foreach (string stub in stubs)
            Assert.True(File.ReadAllText(Path.Combine(generated, stub)) == File.ReadAllText(Path.Combine(package, stub)), $"clients/python/{stub} is stale: regenerate it (clients/python/README.md)");

        string clip = dir.File("clip.wav");
        File.WriteAllBytes(clip, EncoderHarness.Wav(8, seconds: 2));
        (code, stdout, stderr) = Python(dir.Path, site, "-m", "llark_client", "--address", system.Gateway.GrpcAddress.Authority,
            "--api-key", GatewayTestHost.MainKey, "--max-new-tokens", "6", clip, "What key is it in?");
        Assert.True(code == 0, stderr);
        JsonElement final = JsonDocument.Parse(stdout.TrimEnd().Split('\n')[^1]).RootElement;
        Assert.Equal("FINISH_REASON_LENGTH", final.GetProperty("finish_reason").GetString());
        Assert.Equal(6, final.GetProperty("generated_tokens").GetInt32());
        Assert.True(final.GetProperty("audio_tokens").GetInt32() > 0);
    }

    /// <summary>Debian's python3 (whose grpcio and grpc-tools tools/setup.sh installs), run in <paramref name="cwd"/>.</summary>
    private static (int Code, string Stdout, string Stderr) Python(string cwd, string? pythonPath, params string[] args)
    {
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = cwd };
        if (pythonPath is not null) start.Environment["PYTHONPATH"] = pythonPath;
        foreach (string a in args) start.ArgumentList.Add(a);
        using Process python = Process.Start(start)!;
        Task<string> stdout = python.StandardOutput.ReadToEndAsync(), stderr = python.StandardError.ReadToEndAsync();
        Assert.True(python.WaitForExit(TimeSpan.FromMinutes(2)), $"python3 {string.Join(' ', args)} did not finish in 2 minutes");
        return (python.ExitCode, stdout.Result, stderr.Result);
    }
}
