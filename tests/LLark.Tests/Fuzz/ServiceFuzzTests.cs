using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using Google.Protobuf;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Language.V1;
using LLark.Tests.EndToEnd;
using LLark.Tests.Encoder.Service;
using LLark.Tests.Gateway;

namespace LLark.Tests.Fuzz;

/// <summary>
/// The whole system on loopback (tiny models, the real gateway), on random requests through the gateway: every gRPC
/// call ends OK or in a status that says what the caller did (never UNKNOWN or INTERNAL), and every JSON front call
/// in a 2xx or a 4xx with a JSON error, never a 5xx; none runs past <see cref="FuzzRun.CaseTimeout"/>.
/// </summary>
[Trait("Category", FuzzRun.Category)]
public sealed class ServiceFuzzTests(SystemFixture system) : IClassFixture<SystemFixture>
{
    private static readonly Metadata Key = GatewayTestHost.Bearer(GatewayTestHost.MainKey);

    private static readonly Lazy<byte[]> Clip = new(() => EncoderHarness.Wav(7, seconds: 0.5));

    [Fact]
    public Task RandomGenerateRequestsEndInACallersStatus() =>
        FuzzRun.CheckAsync(RequestGen.Generate, async request =>
        {
            var language = new LanguageService.LanguageServiceClient(system.Gateway.Channel);
            (StatusCode code, string detail) = await Bounded.RunAsync(async ct =>
            {
                try
                {
                    using var call = language.Generate(request, Key, cancellationToken: ct);
                    await foreach (GenerateResponse _ in call.ResponseStream.ReadAllAsync(ct)) { }
                    return (StatusCode.OK, "");
                }
                catch (RpcException e)
                {
                    return (e.StatusCode, e.Status.Detail);
                }
            });
            Assert.False(code is StatusCode.Unknown or StatusCode.Internal, $"{code}: {detail}");
        }, iterations: 25, print: RequestGen.Print);

    [Fact]
    public Task MutatedClipsEndInACallersStatus() =>
        FuzzRun.CheckAsync(MutationGen.Inputs([("clip.wav", Clip.Value, 64)]), async input =>
        {
            var encoder = new EncoderService.EncoderServiceClient(system.Gateway.Channel);
            (StatusCode code, string detail) = await Bounded.RunAsync(async ct =>
            {
                try
                {
                    await encoder.EmbedAsync(new EmbedRequest { Audio = new AudioBytes { Data = ByteString.CopyFrom(input.Bytes) } }, Key, cancellationToken: ct);
                    return (StatusCode.OK, "");
                }
                catch (RpcException e)
                {
                    return (e.StatusCode, e.Status.Detail);
                }
            });
            Assert.False(code is StatusCode.Unknown or StatusCode.Internal, $"{code}: {detail}");
        }, iterations: 15, print: input => input.ToString());

    private static readonly Lazy<byte[]> ValidGenerate = new(() =>
    {
        var request = new GenerateRequest { EmbeddingId = "fuzz", Stopping = new StoppingParameters { MaxNewTokens = 2 } };
        request.Turns.Add(new LLark.Language.V1.ChatTurn { Human = "Describe this clip." });
        return request.ToByteArray();
    });

    private static readonly Marshaller<byte[]> Raw = Marshallers.Create(b => b, b => b);

    private static readonly Method<byte[], byte[]> RawGenerate = new(MethodType.ServerStreaming, "llark.language.v1.LanguageService", "Generate", Raw, Raw);

    /// <summary>Message bytes as the wire carries them, mutated or random: many are no GenerateRequest at all.</summary>
    [Fact]
    public Task RawMessageBytesEndInACallersStatus() =>
        FuzzRun.CheckAsync(Gen.Frequency(
                (3, Gen.Const(0).SelectMany(_ => MutationGen.Inputs([("generate request", ValidGenerate.Value, ValidGenerate.Value.Length)]))),
                (1, Gen.Byte.Array[1, 64].Select(b => new MutatedInput($"{b.Length} random bytes {Convert.ToHexStringLower(b)}", b, [])))),
            async input => await RawHolds(input.ToString(), input.Bytes), iterations: 25, print: input => input.ToString());

    [Theory]
    // A field 1 (turns) tag whose length runs past the end of the message.
    [InlineData("0a7f")]
    // A tag of field 0, which protobuf forbids.
    [InlineData("0000")]
    public Task MalformedProtobufRegressions(string hex) => RawHolds(hex, Convert.FromHexString(hex));

    private async Task RawHolds(string name, byte[] bytes)
    {
        bool parses;
        try
        {
            GenerateRequest.Parser.ParseFrom(bytes);
            parses = true;
        }
        catch (InvalidProtocolBufferException)
        {
            parses = false;
        }
        (StatusCode code, string detail) = await Bounded.RunAsync(async ct =>
        {
            try
            {
                using var call = system.Gateway.Channel.CreateCallInvoker().AsyncServerStreamingCall(RawGenerate, null, new CallOptions(Key, cancellationToken: ct), bytes);
                await foreach (byte[] _ in call.ResponseStream.ReadAllAsync(ct)) { }
                return (StatusCode.OK, "");
            }
            catch (RpcException e)
            {
                return (e.StatusCode, e.Status.Detail);
            }
        });
        Assert.False(code is StatusCode.Unknown or StatusCode.Internal, $"{name}: {code}: {detail}");
        // Bytes that are no GenerateRequest are the caller's mistake, unless the gateway refused the call before
        // reading them: a long --fuzz run sends more than the key's requests a second.
        if (!parses) Assert.True(code is StatusCode.InvalidArgument or StatusCode.ResourceExhausted, $"{name}: {code}: {detail}");
    }

    private static readonly string[] Keys =
    [
        "turns", "human", "assistant", "sampling", "temperature", "top_p", "topP", "top_k", "repetition_penalty", "seed", "stopping",
        "max_new_tokens", "maxNewTokens", "stop", "ignore_eos", "return_options", "logprobs", "token_ids", "embedding_id", "frames", "dtype",
        "width", "fps", "data", "encoder_model_id", "audio_bytes", "audio", "filename", "return_frames", "frame_dtype", "no_such_field",
    ];

    private static readonly Gen<JsonNode?> Scalar = Gen.OneOf<Func<JsonNode?>>(
        () => null, () => true, () => false, () => 0, () => -1, () => 1, () => 2, () => 1.5, () => 1e308, () => "NaN", () => "Infinity", () => "",
        () => "x", () => "<audio>", () => "###", () => JsonValue.Create(18446744073709551615UL), () => "AAAAAA==", () => "FRAME_DTYPE_BFLOAT16", () => 99, () => "-1")
        .Select(make => make());

    private static Gen<JsonNode?> Value(int depth) => depth == 0
        ? Scalar
        : Gen.Frequency(
            (3, Scalar),
            (1, Value(depth - 1).Array[0, 3].Select(items => (JsonNode?)new JsonArray(items))),
            (2, Object(depth - 1)));

    private static Gen<JsonNode?> Object(int depth) =>
        Gen.Select(Gen.Int[0, Keys.Length - 1], Value(depth)).Array[0, 4].Select(fields =>
        {
            var o = new JsonObject();
            foreach (var (key, value) in fields) o[Keys[key]] = value;
            return (JsonNode?)o;
        });

    private const string ValidBody = """{"turns":[{"human":"Describe this clip."}],"stopping":{"max_new_tokens":2,"ignore_eos":true},"embedding_id":"fuzz"}""";

    /// <summary>JSON trees made of the API's own field names, and a valid body's text mutated.</summary>
    private static readonly Gen<(string Path, string Body)> Bodies = Gen.Select(
        Gen.OneOf("/v1/generate", "/v1/embed"),
        Gen.Frequency(
            (3, Object(3).Select(o => o!.ToJsonString())),
            (2, MutationGen.Inputs([("generate body", Encoding.UTF8.GetBytes(ValidBody), ValidBody.Length)]).Select(m => Encoding.UTF8.GetString(m.Bytes)))),
        (path, body) => (path, body));

    [Fact]
    public Task RandomJsonBodiesEndInA2xxOrAJsonError() =>
        FuzzRun.CheckAsync(Bodies, async c =>
        {
            using var http = new HttpClient { BaseAddress = system.Gateway.HttpAddress };
            http.DefaultRequestHeaders.Add("x-api-key", GatewayTestHost.MainKey);
            (HttpStatusCode status, string? type, string body) = await Bounded.RunAsync(async ct =>
            {
                using HttpResponseMessage response = await http.PostAsync(new Uri(c.Path, UriKind.Relative), new StringContent(c.Body, Encoding.UTF8, "application/json"), ct);
                return (response.StatusCode, response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsStringAsync(ct));
            });
            int code = (int)status;
            Assert.True(code is >= 200 and < 300 or >= 400 and < 500, $"HTTP {code}: {body}");
            if (code >= 400)
            {
                Assert.Equal("application/json", type);
                ErrorHolds(body);
            }
            else if (type == "text/event-stream")
            {
                string[] events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
                Assert.NotEmpty(events);
                string last = events[^1];
                Assert.True(last.StartsWith("event: final\n", StringComparison.Ordinal) || last.StartsWith("event: error\n", StringComparison.Ordinal), $"the stream ends with: {last}");
                if (last.StartsWith("event: error\n", StringComparison.Ordinal)) ErrorHolds(last["event: error\ndata: ".Length..]);
            }
            else
            {
                JsonDocument.Parse(body).Dispose();
            }
        }, iterations: 40, print: c => $"POST {c.Path} {c.Body}");

    [Fact]
    public Task RandomChatCompletionBodiesEndInA2xxOrAnOpenAiError() =>
        FuzzRun.CheckAsync(OpenAiRequestFuzzTests.Body, async body =>
        {
            using var http = new HttpClient { BaseAddress = system.Gateway.HttpAddress };
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", GatewayTestHost.MainKey);
            (HttpStatusCode status, string? type, string answer) = await Bounded.RunAsync(async ct =>
            {
                using HttpResponseMessage response = await http.PostAsync(new Uri("/v1/chat/completions", UriKind.Relative),
                    new StringContent(body, Encoding.UTF8, "application/json"), ct);
                return (response.StatusCode, response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsStringAsync(ct));
            });
            int code = (int)status;
            Assert.True(code is >= 200 and < 300 or >= 400 and < 500, $"HTTP {code}: {answer}");
            if (code >= 400)
            {
                Assert.Equal("application/json", type);
                OpenAiErrorHolds(answer);
            }
            else if (type == "text/event-stream")
            {
                string[] events = answer.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
                string last = events[^1];
                if (last != "data: [DONE]") OpenAiErrorHolds(last["data: ".Length..]);
            }
            else
            {
                using JsonDocument completion = JsonDocument.Parse(answer);
                Assert.Equal("chat.completion", completion.RootElement.GetProperty("object").GetString());
            }
        }, iterations: 40, print: body => $"POST /v1/chat/completions {body}");

    /// <summary>{"error":{"message":..,"type":..,"param":..,"code":..}}, with a type that is not a server error.</summary>
    private static void OpenAiErrorHolds(string json)
    {
        using JsonDocument error = JsonDocument.Parse(json);
        JsonElement e = error.RootElement.GetProperty("error");
        Assert.NotEqual("server_error", e.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(e.GetProperty("message").GetString()), json);
        Assert.True(e.TryGetProperty("param", out _) && e.TryGetProperty("code", out _), json);
    }

    /// <summary>{"error":{"code":..,"status":..,"message":..}} with a status that blames the caller or says what failed, not UNKNOWN or INTERNAL.</summary>
    private static void ErrorHolds(string json)
    {
        using JsonDocument error = JsonDocument.Parse(json);
        JsonElement e = error.RootElement.GetProperty("error");
        var status = (StatusCode)e.GetProperty("code").GetInt32();
        Assert.False(status is StatusCode.Unknown or StatusCode.Internal, json);
        Assert.False(string.IsNullOrWhiteSpace(e.GetProperty("message").GetString()), json);
    }
}
