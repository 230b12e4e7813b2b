using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Gateway;
using LLark.Language.V1;
using LLark.Tests.Language.Service;
using LLark.Tests.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using static LLark.Tests.Gateway.GatewayTestHost;

namespace LLark.Tests.Gateway;

/// <summary>
/// A language service that fails on demand: each call counts, and the first <see cref="FailNext"/> calls are cut off
/// (the HTTP/2 stream reset) after they arrived, as a pod that dies mid-call does; with <see cref="BreakMidStream"/>
/// a Generate is cut off after its first delta instead.
/// </summary>
internal sealed class FlakyLanguage : LanguageService.LanguageServiceBase
{
    public int Calls;
    public int FailNext;
    public bool BreakMidStream;

    public static async Task<(LoopbackHost Host, FlakyLanguage Service)> StartAsync()
    {
        var service = new FlakyLanguage();
        WebApplicationBuilder builder = WebApplication.CreateBuilder();
        LoopbackHost.Settings(new Dictionary<string, string?> { ["LLark:Listen:HttpPort"] = "-1" })(builder);
        global::LLark.ServiceDefaults.ServiceDefaultsExtensions.AddLLarkServiceDefaults(builder);
        builder.Services.AddSingleton(service);
        WebApplication app = builder.Build();
        app.MapGrpcService<FlakyLanguage>();
        global::LLark.ServiceDefaults.ServiceDefaultsExtensions.MapLLarkDefaults(app);
        app.Services.GetRequiredService<global::LLark.ServiceDefaults.ServingStatus>().Set(true);
        return (await LoopbackHost.StartAsync(app), service);
    }

    private void MaybeFail(ServerCallContext context)
    {
        Interlocked.Increment(ref Calls);
        if (Interlocked.Decrement(ref FailNext) >= 0)
        {
            context.GetHttpContext().Abort();
            throw new RpcException(new Status(StatusCode.Internal, "cut off"));
        }
    }

    public override Task<ModelInfo> GetModelInfo(GetModelInfoRequest request, ServerCallContext context)
    {
        MaybeFail(context);
        return Task.FromResult(new ModelInfo { ModelId = "flaky" });
    }

    public override async Task Generate(GenerateRequest request, IServerStreamWriter<GenerateResponse> responseStream, ServerCallContext context)
    {
        MaybeFail(context);
        await responseStream.WriteAsync(new GenerateResponse { Delta = new TokenDelta { Text = "hi" } });
        if (BreakMidStream)
        {
            // The delta must have left before the stream is cut, as when a pod dies between two tokens.
            await Task.Delay(200);
            context.GetHttpContext().Abort();
            return;
        }
        await responseStream.WriteAsync(new GenerateResponse { Final = new GenerateFinal { Text = "hi", FinishReason = FinishReason.Stop } });
    }
}

/// <summary>Gateways of their own: backends that go down and come back, several pods behind one name, retries, TLS, bad settings.</summary>
public sealed class GatewayResilienceTests
{

    private static readonly Uri Nowhere = new("http://127.0.0.1:1");

    private static async Task<List<EmbeddingChunk>> Fetch(EncoderService.EncoderServiceClient client, string id)
    {
        using var call = client.GetEmbedding(new GetEmbeddingRequest { EmbeddingId = id }, Bearer(MainKey));
        var chunks = new List<EmbeddingChunk>();
        await foreach (EmbeddingChunk chunk in call.ResponseStream.ReadAllAsync()) chunks.Add(chunk);
        return chunks;
    }

    private static void Store(StoredEmbeddingsEncoder encoder, string id, int frames) =>
        encoder.Embeddings[id] = (EmbeddingFramesCodec.Decode(LanguageServiceTests.Frames(frames)), TinyLLark.AudioWidth, TinyLLark.Fps);

    [Fact]
    public async Task ABackendThatIsDownIsUnavailableThroughTheGatewayUntilItReturns()
    {
        int port = LoopbackHost.FreePort();
        var encoder = new StoredEmbeddingsEncoder();
        Store(encoder, "clip", 4);
        LoopbackHost encoderHost = (await StoredEmbeddingsEncoder.StartAsync(port, encoder: encoder)).Host;
        await using LoopbackHost gateway = await LoopbackHost.StartAsync(Build(Destinations(Nowhere, new Uri($"http://127.0.0.1:{port}"))));
        var client = new EncoderService.EncoderServiceClient(gateway.Channel);
        Assert.Equal(4u, (await Fetch(client, "clip"))[0].TotalFrames);

        await encoderHost.DisposeAsync();
        var e = await Assert.ThrowsAsync<RpcException>(() => Fetch(client, "clip"));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains("encoder", e.Status.Detail, StringComparison.Ordinal);
        var language = await Assert.ThrowsAsync<RpcException>(async () =>
            await new LanguageService.LanguageServiceClient(gateway.Channel).GetModelInfoAsync(new GetModelInfoRequest(), Bearer(MainKey)));
        Assert.Equal(StatusCode.Unavailable, language.StatusCode);
        using (var http = new HttpClient { BaseAddress = gateway.HttpAddress })
        {
            http.DefaultRequestHeaders.Add("x-api-key", MainKey);
            using HttpResponseMessage json = await http.GetAsync(new Uri("/v1/model-info", UriKind.Relative));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, json.StatusCode);
            Assert.Contains("the language service is unavailable", await json.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        await using (encoderHost = (await StoredEmbeddingsEncoder.StartAsync(port, encoder: encoder)).Host)
        {
            for (int attempt = 0; ; attempt++)
            {
                try
                {
                    Assert.Equal(4u, (await Fetch(client, "clip"))[0].TotalFrames);
                    break;
                }
                catch (RpcException retry) when (retry.StatusCode == StatusCode.Unavailable && attempt < 50)
                {
                    await Task.Delay(100);
                }
            }
        }
    }

    [Fact]
    public async Task AHeadlessNameBecomesOneDestinationPerPodAndADeadPodIsRoutedAround()
    {
        int port = LoopbackHost.FreePort();
        var (first, a) = await StoredEmbeddingsEncoder.StartAsync(port, "127.0.0.1");
        var (second, b) = await StoredEmbeddingsEncoder.StartAsync(port, "127.0.0.2");
        await using var secondHost = second;
        Store(a, "clip", 3);
        Store(b, "clip", 3);
        HostLookup pods = (host, family, ct) => Task.FromResult(host == "encoder-pods"
            ? new[] { IPAddress.Parse("127.0.0.2"), IPAddress.Parse("127.0.0.1") }
            : throw new SocketException((int)SocketError.HostNotFound));
        await using LoopbackHost gateway = await LoopbackHost.StartAsync(Build(
            Destinations(Nowhere, new Uri($"http://encoder-pods:{port}")),
            builder => builder.Services.AddSingleton(pods)));
        var client = new EncoderService.EncoderServiceClient(gateway.Channel);

        for (int i = 0; i < 30; i++) await Fetch(client, "clip");
        Assert.True(a.Calls > 0 && b.Calls > 0, $"calls: {a.Calls} and {b.Calls}");

        // One pod goes away: a connection to it cannot be made, so the call goes to the other pod instead.
        await first.DisposeAsync();
        for (int i = 0; i < 10; i++) Assert.Equal(3u, (await Fetch(client, "clip"))[0].TotalFrames);
    }

    [Fact]
    public async Task IdempotentCallsAreRetriedAfterAFailureButAGenerateThatReachedABackendIsNot()
    {
        var (host, flaky) = await FlakyLanguage.StartAsync();
        await using (host)
        {
            int port = LoopbackHost.FreePort();
            await using LoopbackHost gateway = await LoopbackHost.StartAsync(Build(Destinations(host.GrpcAddress, new Uri($"http://127.0.0.1:{port}"))));
            var client = new LanguageService.LanguageServiceClient(gateway.Channel);

            flaky.FailNext = 1;
            Assert.Equal("flaky", (await client.GetModelInfoAsync(new GetModelInfoRequest(), Bearer(MainKey))).ModelId);
            Assert.Equal(2, flaky.Calls);

            flaky.Calls = 0;
            flaky.FailNext = 1;
            var e = await Assert.ThrowsAsync<RpcException>(() => GatewayTests.Run(client, GatewayTests.Request(4), Bearer(MainKey)));
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
            Assert.Equal(1, flaky.Calls);
            Assert.Equal("hi", (await GatewayTests.Run(client, GatewayTests.Request(4), Bearer(MainKey))).Final.Text);

            flaky.Calls = 0;
            flaky.FailNext = 5;
            e = await Assert.ThrowsAsync<RpcException>(async () => await client.GetModelInfoAsync(new GetModelInfoRequest(), Bearer(MainKey)));
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
            Assert.Equal(3, flaky.Calls);
            flaky.FailNext = 0;
        }
    }

    [Fact]
    public async Task AStreamThatBreaksMidCallReachesGrpcCallersAsUnavailableNotCancelled()
    {
        var (host, flaky) = await FlakyLanguage.StartAsync();
        await using (host)
        {
            await using LoopbackHost gateway = await LoopbackHost.StartAsync(Build(Destinations(host.GrpcAddress, Nowhere)));
            var client = new LanguageService.LanguageServiceClient(gateway.Channel);
            flaky.BreakMidStream = true;

            using var call = client.Generate(GatewayTests.Request(4), Bearer(MainKey));
            Assert.True(await call.ResponseStream.MoveNext());
            Assert.Equal("hi", call.ResponseStream.Current.Delta.Text);
            var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
            Assert.Contains("stream broke", e.Status.Detail, StringComparison.Ordinal);
            Assert.Equal(1, flaky.Calls);

            flaky.BreakMidStream = false;
            Assert.Equal("hi", (await GatewayTests.Run(client, GatewayTests.Request(4), Bearer(MainKey))).Final.Text);
        }
    }

    [Fact]
    public async Task RefusalsPerAddressAreLimitedAndSoAreItsHealthWatches()
    {
        var settings = Destinations(Nowhere, Nowhere);
        settings["LLark:Gateway:Anonymous:RefusalBurst"] = "3";
        settings["LLark:Gateway:Anonymous:RefusalsPerSecond"] = "0.01";
        settings["LLark:Gateway:Anonymous:MaxHealthWatches"] = "2";
        await using LoopbackHost gateway = await LoopbackHost.StartAsync(Build(settings));
        var client = new LanguageService.LanguageServiceClient(gateway.Channel);

        var statuses = new List<StatusCode>();
        for (int i = 0; i < 10; i++)
        {
            var e = await Assert.ThrowsAsync<RpcException>(async () => await client.GetModelInfoAsync(new GetModelInfoRequest(), Bearer("wrong-key-0123456789")));
            statuses.Add(e.StatusCode);
        }
        Assert.Equal([.. Enumerable.Repeat(StatusCode.Unauthenticated, 3), .. Enumerable.Repeat(StatusCode.ResourceExhausted, 7)], statuses);

        var health = new Health.HealthClient(gateway.Channel);
        using var cts = new CancellationTokenSource();
        using var first = health.Watch(new HealthCheckRequest(), cancellationToken: cts.Token);
        using var second = health.Watch(new HealthCheckRequest(), cancellationToken: cts.Token);
        Assert.True(await first.ResponseStream.MoveNext());
        Assert.True(await second.ResponseStream.MoveNext());
        using var third = health.Watch(new HealthCheckRequest());
        var refused = await Assert.ThrowsAsync<RpcException>(() => third.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);
        await cts.CancelAsync();
    }

    [Fact]
    public void OneRefusalPerAddressIsLoggedPerInterval()
    {
        using var limits = new AnonymousLimits(Options.Create(new GatewayOptions { Anonymous = { LogInterval = TimeSpan.FromHours(1) } }));
        Assert.True(limits.LogsRefusal("192.0.2.1"));
        Assert.False(limits.LogsRefusal("192.0.2.1"));
        Assert.False(limits.LogsRefusal("192.0.2.1"));
        Assert.True(limits.LogsRefusal("192.0.2.2"));
    }

    [Fact]
    public async Task WithACertificateConfiguredTheGatewayServesTls()
    {
        using var dir = new global::LLark.Tests.Checkpoints.TempDirectory();
        using RSA rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using X509Certificate2 certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        string certPath = Path.Combine(dir.Path, "tls.crt"), keyPath = Path.Combine(dir.Path, "tls.key");
        File.WriteAllText(certPath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, rsa.ExportPkcs8PrivateKeyPem());

        var settings = Destinations(Nowhere, Nowhere);
        settings["LLark:Listen:Certificate:Path"] = certPath;
        settings["LLark:Listen:Certificate:KeyPath"] = keyPath;
        WebApplication app = Build(settings);
        await app.StartAsync();
        try
        {
            IReadOnlyList<Uri> addresses = global::LLark.ServiceDefaults.ServiceDefaultsExtensions.BoundAddresses(app);
            Assert.All(addresses, a => Assert.Equal("https", a.Scheme));
            using var handler = new HttpClientHandler
            {
                ServerCertificateCustomValidationCallback = (_, presented, _, _) => presented?.Thumbprint == certificate.Thumbprint,
            };
            using GrpcChannel channel = GrpcChannel.ForAddress(addresses[0], new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = false });
            var health = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest());
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
            using var http = new HttpClient(handler, disposeHandler: false) { BaseAddress = addresses[1] };
            Assert.Equal("SERVING", await http.GetStringAsync(new Uri("/healthz", UriKind.Relative)));
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    [Theory]
    [InlineData("no keys")]
    [InlineData("short hash")]
    [InlineData("same name twice")]
    [InlineData("bad file line")]
    [InlineData("missing file")]
    [InlineData("zero burst")]
    [InlineData("no room per pod")]
    public async Task BadSettingsStopTheGatewayAtStart(string problem)
    {
        using var dir = new global::LLark.Tests.Checkpoints.TempDirectory();
        var settings = Destinations(Nowhere, Nowhere);
        switch (problem)
        {
            case "no keys": break;
            case "short hash": settings["LLark:Gateway:ApiKeys:0:Sha256"] = "abc123"; break;
            case "same name twice":
                settings["LLark:Gateway:ApiKeys:1:Name"] = "main";
                settings["LLark:Gateway:ApiKeys:1:Sha256"] = Sha256Hex("other");
                break;
            case "bad file line":
                File.WriteAllText(Path.Combine(dir.Path, "keys"), "ok:" + Sha256Hex("x") + "\nno-colon-here\n");
                settings["LLark:Gateway:ApiKeysFile"] = Path.Combine(dir.Path, "keys");
                break;
            case "missing file": settings["LLark:Gateway:ApiKeysFile"] = Path.Combine(dir.Path, "absent"); break;
            case "no room per pod": settings["LLark:Gateway:Affinity:MaxConcurrentPerPod"] = "0"; break;
            default: settings["LLark:Gateway:Limits:Burst"] = "0"; break;
        }
        WebApplication app = Build(settings, mainKey: problem != "no keys");
        await using (app)
        {
            var e = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
            string expected = problem switch
            {
                "no keys" => "no API keys",
                "short hash" => "64 hex digits",
                "same name twice" => "used twice",
                "bad file line" => "line 2",
                "missing file" => "absent",
                "no room per pod" => "MaxConcurrentPerPod",
                _ => "Burst",
            };
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        }
    }
}
