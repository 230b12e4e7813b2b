using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Language.Service;
using LLark.Language.V1;
using LLark.Tests.Language.Service;
using LLark.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using static LLark.Tests.Gateway.GatewayTestHost;
using ChatTurn = LLark.Language.V1.ChatTurn;

namespace LLark.Tests.Gateway;

/// <summary>Everything a caller does through the gateway, against the real language service and the stand-in encoder.</summary>
public sealed class GatewayTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    private LanguageService.LanguageServiceClient Language => new(fixture.Gateway.Channel);
    private EncoderService.EncoderServiceClient Encoder => new(fixture.Gateway.Channel);

    internal static GenerateRequest Request(uint maxNew, EmbeddingFrames? frames = null)
    {
        var request = new GenerateRequest { Stopping = new StoppingParameters { MaxNewTokens = maxNew, IgnoreEos = true } };
        request.Turns.Add(new ChatTurn { Human = "What instruments play?" });
        if (frames is not null) request.Frames = frames;
        return request;
    }

    internal static async Task<(List<TokenDelta> Deltas, GenerateFinal Final)> Run(LanguageService.LanguageServiceClient client, GenerateRequest request,
        Metadata? headers = null)
    {
        using var call = client.Generate(request, headers);
        var deltas = new List<TokenDelta>();
        GenerateFinal? final = null;
        await foreach (GenerateResponse r in call.ResponseStream.ReadAllAsync())
        {
            if (r.FrameCase == GenerateResponse.FrameOneofCase.Delta) deltas.Add(r.Delta);
            else final = r.Final;
        }
        return (deltas, final ?? throw new InvalidOperationException("no final frame"));
    }

    private HttpClient Http(string? key = MainKey)
    {
        var http = new HttpClient { BaseAddress = fixture.Gateway.HttpAddress };
        if (key is not null) http.DefaultRequestHeaders.Add("x-api-key", key);
        return http;
    }

    [Fact]
    public async Task GenerateThroughTheGatewayStreamsTheSameTextAsDirect()
    {
        EmbeddingFrames frames = LanguageServiceTests.Frames(6, seed: 21);
        var (deltas, final) = await Run(Language, Request(12, frames), Bearer(MainKey));
        var (_, direct) = await Run(new LanguageService.LanguageServiceClient(fixture.Language.Channel), Request(12, frames));
        Assert.Equal(direct.Text, final.Text);
        Assert.Equal(final.Text, string.Concat(deltas.Select(d => d.Text)));
        Assert.Equal(12u, final.Usage.GeneratedTokens);
        // How many deltas carry the text is timing: a stream whose writes fall behind the decode steps gets the waiting
        // tokens in one delta, and on a loaded machine that can be all twelve.
        Assert.NotEmpty(deltas);
    }

    [Fact]
    public async Task ModelInfoAndAKeyFromTheKeyFile()
    {
        ModelInfo info = await Language.GetModelInfoAsync(new GetModelInfoRequest(), new Metadata { { "x-api-key", FileKey } });
        Assert.Equal(Path.GetFileName(TinyLLark.Directory), info.ModelId);
        Assert.Equal((uint)TinyLLark.AudioWidth, info.AudioEmbeddingWidth);
    }

    [Fact]
    public async Task AnEmbeddingIsFetchedByIdThroughTheEncoderRoute()
    {
        EmbeddingFrames frames = LanguageServiceTests.Frames(7, seed: 3);
        fixture.Encoder.Embeddings["gw-clip"] = (EmbeddingFramesCodec.Decode(frames), TinyLLark.AudioWidth, TinyLLark.Fps);
        using var call = Encoder.GetEmbedding(new GetEmbeddingRequest { EmbeddingId = "gw-clip" }, Bearer(MainKey));
        var chunks = new List<EmbeddingChunk>();
        await foreach (EmbeddingChunk chunk in call.ResponseStream.ReadAllAsync()) chunks.Add(chunk);
        Assert.Equal(7u, chunks[0].TotalFrames);
        Assert.Equal(EmbeddingFramesCodec.Decode(frames), chunks.SelectMany(c => EmbeddingFramesCodec.Decode(c.Frames)).ToArray());

        var missing = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var unknown = Encoder.GetEmbedding(new GetEmbeddingRequest { EmbeddingId = "no-such" }, Bearer(MainKey));
            await unknown.ResponseStream.MoveNext();
        });
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task AWrongOrMissingKeyIsUnauthenticatedAndNoBackendSeesTheCall()
    {
        int languageBefore = fixture.LanguageCalls.Calls, encoderBefore = fixture.Encoder.Calls;
        foreach (Metadata? headers in new Metadata?[] { null, Bearer("not-a-key"), new() { { "x-api-key", "wrong" } }, new() { { "authorization", "Basic " + MainKey } } })
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => Run(Language, Request(4, LanguageServiceTests.Frames(2)), headers));
            Assert.Equal(StatusCode.Unauthenticated, e.StatusCode);
            var info = await Assert.ThrowsAsync<RpcException>(async () => await Language.GetModelInfoAsync(new GetModelInfoRequest(), headers));
            Assert.Equal(StatusCode.Unauthenticated, info.StatusCode);
            var embedding = await Assert.ThrowsAsync<RpcException>(async () =>
            {
                using var call = Encoder.GetEmbedding(new GetEmbeddingRequest { EmbeddingId = "gw-clip" }, headers);
                await call.ResponseStream.MoveNext();
            });
            Assert.Equal(StatusCode.Unauthenticated, embedding.StatusCode);
        }
        Assert.Equal(languageBefore, fixture.LanguageCalls.Calls);
        Assert.Equal(encoderBefore, fixture.Encoder.Calls);

        using HttpResponseMessage http = await Http(key: null).GetAsync(new Uri("/v1/model-info", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, http.StatusCode);
        Assert.Equal("Bearer", http.Headers.WwwAuthenticate.Single().Scheme);
        using JsonDocument body = JsonDocument.Parse(await http.Content.ReadAsStringAsync());
        Assert.Equal("UNAUTHENTICATED", body.RootElement.GetProperty("error").GetProperty("status").GetString());
        Assert.Equal(languageBefore, fixture.LanguageCalls.Calls);
    }

    /// <summary>Calls with the limited key (burst 2) until one is refused; the refused one must not reach the backend.</summary>
    private async Task<RpcException> ExhaustLimitedKey()
    {
        for (int call = 1; call <= 3; call++)
        {
            int before = fixture.LanguageCalls.Calls;
            try
            {
                await Language.GetModelInfoAsync(new GetModelInfoRequest(), Bearer(LimitedKey));
            }
            catch (RpcException e)
            {
                Assert.Equal(before, fixture.LanguageCalls.Calls);
                return e;
            }
        }
        throw new InvalidOperationException("a burst of 2 let 3 calls through");
    }

    [Fact]
    public async Task OverTheRateLimitCallsGetResourceExhaustedWithARetryHint()
    {
        RpcException e = await ExhaustLimitedKey();
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("limited", e.Status.Detail, StringComparison.Ordinal);
        Assert.InRange(long.Parse(e.Trailers.GetValue("grpc-retry-pushback-ms")!, CultureInfo.InvariantCulture), 1, 10_000);

        using HttpResponseMessage http = await Http(LimitedKey).GetAsync(new Uri("/v1/model-info", UriKind.Relative));
        Assert.Equal(HttpStatusCode.TooManyRequests, http.StatusCode);
        Assert.InRange(http.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 10);
        // Other keys have buckets of their own.
        await Language.GetModelInfoAsync(new GetModelInfoRequest(), Bearer(MainKey));
    }

    [Fact]
    public async Task ABodyOverTheRoutesLimitIsResourceExhaustedNamingTheLimitAndTheGatewayGoesOn()
    {
        var settings = GatewayTestHost.Destinations(fixture.Language.GrpcAddress, fixture.EncoderHost.GrpcAddress);
        settings["ReverseProxy:Routes:language:MaxRequestBodySize"] = "100000";
        await using LoopbackHost gateway = await LoopbackHost.StartAsync(GatewayTestHost.Build(settings));
        var client = new LanguageService.LanguageServiceClient(gateway.Channel);

        GenerateRequest tooLarge = Request(2);
        tooLarge.AudioBytes = new AudioBytes { Data = ByteString.CopyFrom(new byte[200_000]), Filename = "clip.wav" };
        var e = await Assert.ThrowsAsync<RpcException>(() => Run(client, tooLarge, Bearer(MainKey)));
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("100000 bytes", e.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("language", e.Status.Detail, StringComparison.Ordinal);

        (_, GenerateFinal final) = await Run(client, Request(2, LanguageServiceTests.Frames(8)), Bearer(MainKey));
        Assert.Equal(2u, final.Usage.GeneratedTokens);
    }

    [Fact]
    public async Task ARetriableCallOverTheRoutesLimitIsResourceExhaustedWithoutReachingItsBackend()
    {
        // Embed is retried on failure, so its body is buffered as it is read: the limit must still count the caller's bytes.
        var settings = GatewayTestHost.Destinations(fixture.Language.GrpcAddress, fixture.EncoderHost.GrpcAddress);
        settings["ReverseProxy:Routes:encoder:MaxRequestBodySize"] = "100000";
        await using LoopbackHost gateway = await LoopbackHost.StartAsync(GatewayTestHost.Build(settings));
        var client = new EncoderService.EncoderServiceClient(gateway.Channel);
        int encoderBefore = fixture.Encoder.Calls;

        var tooLarge = new EmbedRequest { Audio = new AudioBytes { Data = ByteString.CopyFrom(new byte[200_000]), Filename = "clip.wav" } };
        var e = await Assert.ThrowsAsync<RpcException>(async () => await client.EmbedAsync(tooLarge, Bearer(MainKey)));
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("100000 bytes", e.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("encoder", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(encoderBefore, fixture.Encoder.Calls);

        byte[] clip = [.. "RIFF-small-clip"u8];
        string id = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(clip));
        fixture.Encoder.Embeddings[id] = (EmbeddingFramesCodec.Decode(LanguageServiceTests.Frames(3, seed: 4)), TinyLLark.AudioWidth, TinyLLark.Fps);
        EmbedResponse embedded = await client.EmbedAsync(new EmbedRequest { Audio = new AudioBytes { Data = ByteString.CopyFrom(clip) } }, Bearer(MainKey));
        Assert.Equal(id, embedded.EmbeddingId);
    }

    [Fact]
    public async Task AKeyGetsNoMoreStreamsThanItsLimit()
    {
        Metadata narrow = Bearer(NarrowKey);
        using var cts = new CancellationTokenSource();
        using (var running = Language.Generate(Request(2000, LanguageServiceTests.Frames(3)), narrow, cancellationToken: cts.Token))
        {
            Assert.True(await running.ResponseStream.MoveNext(cts.Token));
            var e = await Assert.ThrowsAsync<RpcException>(async () => await Language.GetModelInfoAsync(new GetModelInfoRequest(), narrow));
            Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
            Assert.Equal("1000", e.Trailers.GetValue("grpc-retry-pushback-ms"));
            await Language.GetModelInfoAsync(new GetModelInfoRequest(), Bearer(MainKey));
            cts.Cancel();
        }
        // The stream's slot comes back when the proxied call has ended.
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                await Language.GetModelInfoAsync(new GetModelInfoRequest(), narrow);
                break;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted && attempt < 100)
            {
                await Task.Delay(20);
            }
        }
    }

    [Fact]
    public async Task HealthAnswersWithoutAKey()
    {
        var health = new Health.HealthClient(fixture.Gateway.Channel);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);
        using HttpClient http = Http(key: null);
        Assert.Equal("SERVING", await http.GetStringAsync(new Uri("/healthz", UriKind.Relative)));
    }

    [Fact]
    public async Task AServiceTheGatewayDoesNotRouteIsUnimplemented()
    {
        var method = new Method<GetModelInfoRequest, ModelInfo>(MethodType.Unary, "llark.other.v1.OtherService", "GetModelInfo",
            Marshallers.Create(m => m.ToByteArray(), GetModelInfoRequest.Parser.ParseFrom), Marshallers.Create(m => m.ToByteArray(), ModelInfo.Parser.ParseFrom));
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await fixture.Gateway.Channel.CreateCallInvoker().AsyncUnaryCall(method, null, new CallOptions(Bearer(MainKey)), new GetModelInfoRequest()));
        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
    }

    [Fact]
    public async Task JsonModelInfoEmbedAndDelete()
    {
        using HttpClient http = Http();
        using (JsonDocument info = JsonDocument.Parse(await http.GetStringAsync(new Uri("/v1/model-info", UriKind.Relative))))
        {
            Assert.Equal(Path.GetFileName(TinyLLark.Directory), info.RootElement.GetProperty("modelId").GetString());
            Assert.Equal(TinyLLark.AudioWidth, info.RootElement.GetProperty("audioEmbeddingWidth").GetInt32());
        }

        byte[] clip = [.. "RIFF-json-clip"u8];
        string id = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(clip));
        fixture.Encoder.Embeddings[id] = (EmbeddingFramesCodec.Decode(LanguageServiceTests.Frames(4, seed: 8)), TinyLLark.AudioWidth, TinyLLark.Fps);
        string json = $$$"""{"audio": {"data": "{{{Convert.ToBase64String(clip)}}}", "filename": "a.wav"} }""";
        using (HttpResponseMessage embedded = await http.PostAsync(new Uri("/v1/embed", UriKind.Relative), new StringContent(json, Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.OK, embedded.StatusCode);
            using JsonDocument doc = JsonDocument.Parse(await embedded.Content.ReadAsStringAsync());
            Assert.Equal(id, doc.RootElement.GetProperty("embeddingId").GetString());
            Assert.Equal(4, doc.RootElement.GetProperty("frames").GetInt32());
        }
        using (var raw = new ByteArrayContent(clip))
        {
            raw.Headers.ContentType = new MediaTypeHeaderValue("audio/wav");
            using HttpResponseMessage embedded = await http.PostAsync(new Uri("/v1/embed?filename=a.wav", UriKind.Relative), raw);
            using JsonDocument doc = JsonDocument.Parse(await embedded.Content.ReadAsStringAsync());
            Assert.Equal(id, doc.RootElement.GetProperty("embeddingId").GetString());
        }

        using (HttpResponseMessage bad = await http.PostAsync(new Uri("/v1/embed", UriKind.Relative), new StringContent("{\"audio\": 5}", Encoding.UTF8, "application/json")))
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        using (HttpResponseMessage refused = await http.PostAsync(new Uri("/v1/embed", UriKind.Relative), new ByteArrayContent("garbage"u8.ToArray())))
        {
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            using JsonDocument doc = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
            Assert.Equal("INVALID_ARGUMENT", doc.RootElement.GetProperty("error").GetProperty("status").GetString());
        }

        using (HttpResponseMessage deleted = await http.DeleteAsync(new Uri($"/v1/embeddings/{id}", UriKind.Relative)))
            Assert.Equal("{ \"deleted\": true }", await deleted.Content.ReadAsStringAsync());
        using (HttpResponseMessage again = await http.DeleteAsync(new Uri($"/v1/embeddings/{id}", UriKind.Relative)))
            Assert.Equal("{ \"deleted\": false }", await again.Content.ReadAsStringAsync());
    }

    /// <summary>The events of an SSE body: (event name or null, data).</summary>
    internal static async IAsyncEnumerable<(string? Event, string Data)> Events(Stream body)
    {
        using var reader = new StreamReader(body);
        string? name = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) name = line[7..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                yield return (name, line[6..]);
                name = null;
            }
        }
    }

    private static StringContent GenerateJson(int frames, int maxNew, int seed = 1)
    {
        EmbeddingFrames embedding = LanguageServiceTests.Frames(frames, seed);
        string json = $$"""
            {"turns": [{"human": "What instruments play?"}], "frames": {{JsonFormatter.Default.Format(embedding)}},
             "stopping": {"maxNewTokens": {{maxNew}}, "ignoreEos": true} }
            """;
        return new StringContent(json, Encoding.UTF8, "application/json");
    }

    [Fact]
    public async Task SseGenerateStreamsDeltasThenTheFinalFrame()
    {
        using HttpClient http = Http();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/v1/generate", UriKind.Relative)) { Content = GenerateJson(5, 10, seed: 4) };
        using HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var text = new StringBuilder();
        GenerateFinal? final = null;
        await foreach ((string? name, string data) in Events(await response.Content.ReadAsStreamAsync()))
        {
            if (name is null) text.Append(TokenDelta.Parser.ParseJson(data).Text);
            else
            {
                Assert.Equal("final", name);
                final = GenerateFinal.Parser.ParseJson(data);
            }
        }
        Assert.NotNull(final);
        Assert.Equal(final.Text, text.ToString());
        Assert.Equal(FinishReason.Length, final.FinishReason);
        Assert.Equal(10u, final.Usage.GeneratedTokens);
        var (_, direct) = await Run(new LanguageService.LanguageServiceClient(fixture.Language.Channel), Request(10, LanguageServiceTests.Frames(5, seed: 4)));
        Assert.Equal(direct.Text, final.Text);

        using HttpResponseMessage invalid = await http.PostAsync(new Uri("/v1/generate", UriKind.Relative), GenerateJson(5, 1_000_000));
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Contains("max_new_tokens", await invalid.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnSseCallerThatGoesAwayCancelsTheGeneration()
    {
        ModelHost model = fixture.Language.App.Services.GetRequiredService<ModelHost>();
        using (HttpClient http = Http())
        using (var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/v1/generate", UriKind.Relative)) { Content = GenerateJson(3, 2000) })
        using (HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            await using Stream body = await response.Content.ReadAsStreamAsync();
            await using IAsyncEnumerator<(string?, string)> events = Events(body).GetAsyncEnumerator();
            Assert.True(await events.MoveNextAsync());
            Assert.True(model.Ready().Scheduler.ActiveSequences >= 1);
        }
        for (int i = 0; i < 300 && model.Ready().Scheduler.ActiveSequences > 0; i++) await Task.Delay(10);
        Assert.Equal(0, model.Ready().Scheduler.ActiveSequences);
    }

    [Fact]
    public async Task MetricsCountRequestsAuthFailuresAndRateLimits()
    {
        await Language.GetModelInfoAsync(new GetModelInfoRequest(), Bearer(MainKey));
        await Assert.ThrowsAsync<RpcException>(async () => await Language.GetModelInfoAsync(new GetModelInfoRequest(), Bearer("nope")));
        await ExhaustLimitedKey();
        using HttpClient http = Http(key: null);
        string metrics = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains("llark_gateway_requests_total{", metrics, StringComparison.Ordinal);
        Assert.Contains("route=\"language\"", metrics, StringComparison.Ordinal);
        Assert.Contains("status=\"OK\"", metrics, StringComparison.Ordinal);
        Assert.Contains("llark_gateway_auth_failures_total{", metrics, StringComparison.Ordinal);
        Assert.Contains("reason=\"unknown\"", metrics, StringComparison.Ordinal);
        Assert.Contains("llark_gateway_rate_limited_total{", metrics, StringComparison.Ordinal);
        Assert.Contains("key=\"limited\"", metrics, StringComparison.Ordinal);
    }
}
