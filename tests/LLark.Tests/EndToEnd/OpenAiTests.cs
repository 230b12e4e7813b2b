using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Grpc.Core;
using LLark.Language.Service;
using LLark.Language.V1;
using LLark.Tests.Deploy;
using LLark.Tests.Language.Engine.Serving;
using LLark.Tests.Gateway;
using LLark.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace LLark.Tests.EndToEnd;

/// <summary>
/// The gateway's OpenAI-compatible door on the whole system (real encoder on the tiny Jukebox, real language service on
/// the tiny LLark): the official OpenAI Node SDK as the client (tests/openai-client, installed by tools/setup.sh), and
/// raw HTTP for what the SDK would refuse to send. Answers are compared with the same request over gRPC.
/// </summary>
public sealed class OpenAiTests(SystemFixture system) : IClassFixture<SystemFixture>
{
    private const string Question = "What instruments are playing?";

    private static readonly string Clip = Path.Combine(RepoPaths.Root, "models", "clips", "tiny-test-4s.wav");

    private HttpClient Http(string? key = GatewayTestHost.MainKey)
    {
        var http = new HttpClient { BaseAddress = system.Gateway.HttpAddress };
        if (key is not null) http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    /// <summary>The same question over the gRPC contract, greedy, through the gateway.</summary>
    private async Task<GenerateFinal> OverGrpc(string embeddingId, uint maxNew, params ChatTurn[] turns)
    {
        var request = new GenerateRequest
        {
            EmbeddingId = embeddingId,
            Stopping = new StoppingParameters { MaxNewTokens = maxNew, IgnoreEos = true },
        };
        request.Turns.Add(turns);
        using var call = new LanguageService.LanguageServiceClient(system.Gateway.Channel).Generate(request, GatewayTestHost.Bearer(GatewayTestHost.MainKey));
        GenerateFinal? final = null;
        await foreach (GenerateResponse r in call.ResponseStream.ReadAllAsync())
        {
            if (r.FrameCase == GenerateResponse.FrameOneofCase.Final) final = r.Final;
        }
        return final!;
    }

    [Fact]
    public async Task TheOpenAiNodeSdkStreamsAndAsksAgainByIdAndGetsErrorsAsItsOwnClasses()
    {
        string folder = Path.Combine(RepoPaths.Root, "tests", "openai-client");
        if (!Directory.Exists(Path.Combine(folder, "node_modules", "openai")))
            throw new InvalidOperationException("tests/openai-client/node_modules is missing: run tools/setup.sh (npm ci --prefix tests/openai-client)");
        var baseUrl = new Uri(system.Gateway.HttpAddress!, "/v1");
        ProcessRun.Output output = ProcessRun.Run("node", [Path.Combine(folder, "chat.mjs"), baseUrl.ToString(), GatewayTestHost.MainKey, Clip, Question, "8"],
            "Node.js runs the OpenAI SDK client", folder);
        Assert.True(output.ExitCode == 0, output.Stderr);
        JsonElement o = JsonDocument.Parse(output.Stdout).RootElement;

        Assert.Equal(["llark-tiny-untrained"], o.GetProperty("models").EnumerateArray().Select(m => m.GetString()!));

        JsonElement streamed = o.GetProperty("streamed");
        string id = streamed.GetProperty("embeddingIdHeader").GetString()!;
        Assert.False(string.IsNullOrEmpty(id));
        Assert.Equal(id, streamed.GetProperty("embeddingIdExtension").GetString());
        Assert.Equal(["chat.completion.chunk"], streamed.GetProperty("objects").EnumerateArray().Select(m => m.GetString()!));
        Assert.Equal("assistant", streamed.GetProperty("role").GetString());
        Assert.Equal("length", streamed.GetProperty("finishReason").GetString());
        Assert.Equal(0, streamed.GetProperty("lastChoices").GetInt32());
        Assert.False(streamed.GetProperty("usageOnOthers").GetBoolean());
        JsonElement usage = streamed.GetProperty("usage");
        Assert.Equal(8, usage.GetProperty("completion_tokens").GetInt32());
        int audio = usage.GetProperty("prompt_tokens_details").GetProperty("audio_tokens").GetInt32();
        Assert.True(audio > 0);
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + 8, usage.GetProperty("total_tokens").GetInt32());

        JsonElement whole = o.GetProperty("whole");
        Assert.Equal("chat.completion", whole.GetProperty("object").GetString());
        Assert.Equal("assistant", whole.GetProperty("role").GetString());
        Assert.Equal("length", whole.GetProperty("finishReason").GetString());
        Assert.Equal(id, whole.GetProperty("embeddingId").GetString());
        Assert.Equal(8, whole.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(streamed.GetProperty("text").GetString(), whole.GetProperty("text").GetString());

        // The same request over the gRPC contract gives the same greedy text.
        GenerateFinal grpc = await OverGrpc(id, 8, new ChatTurn { Human = Question });
        Assert.Equal(grpc.Text, streamed.GetProperty("text").GetString());
        Assert.Equal(grpc.Usage.AudioTokens, (uint)audio);

        JsonElement twoChoices = o.GetProperty("twoChoices");
        Assert.True(twoChoices.GetProperty("isApiError").GetBoolean());
        Assert.Equal("BadRequestError", twoChoices.GetProperty("class").GetString());
        Assert.Equal(400, twoChoices.GetProperty("status").GetInt32());
        Assert.Equal("invalid_request_error", twoChoices.GetProperty("type").GetString());
        Assert.Equal("n", twoChoices.GetProperty("param").GetString());

        JsonElement badKey = o.GetProperty("badKey");
        Assert.Equal("AuthenticationError", badKey.GetProperty("class").GetString());
        Assert.Equal(401, badKey.GetProperty("status").GetInt32());
        Assert.Equal("authentication_error", badKey.GetProperty("type").GetString());

        // Refused before the first token, so a plain HTTP error even though a stream was asked for.
        JsonElement unknown = o.GetProperty("unknownEmbedding");
        Assert.Equal("NotFoundError", unknown.GetProperty("class").GetString());
        Assert.Equal("not_found_error", unknown.GetProperty("type").GetString());
        Assert.Equal("messages[0].content[0].llark_embedding.id", unknown.GetProperty("param").GetString());
    }

    private static string UserWithClip(string clipPart, string text) =>
        $$"""{"role": "user", "content": [{{clipPart}}, {"type": "text", "text": "{{text}}"}]}""";

    private static string Upload(byte[] data) => $$$"""{"type": "input_audio", "input_audio": {"data": "{{{Convert.ToBase64String(data)}}}", "format": "wav"}}""";

    private static string ById(string id) => $$$"""{"type": "llark_embedding", "llark_embedding": {"id": "{{{id}}}"}}""";

    private async Task<(HttpStatusCode Status, JsonNode Body, HttpResponseMessage Response)> Post(string json, string? key = GatewayTestHost.MainKey)
    {
        using HttpClient http = Http(key);
        HttpResponseMessage response = await http.PostAsync(new Uri("/v1/chat/completions", UriKind.Relative), new StringContent(json, Encoding.UTF8, "application/json"));
        string body = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonNode.Parse(body)!, response);
    }

    private async Task AssertRefused(string json, string? param, string messagePart)
    {
        var (status, body, response) = await Post(json);
        using (response)
        {
            Assert.True(status == HttpStatusCode.BadRequest, body.ToJsonString());
            JsonNode error = body["error"]!;
            Assert.Equal("invalid_request_error", (string?)error["type"]);
            Assert.Equal(param, (string?)error["param"]);
            Assert.Null(error["code"]);
            Assert.Contains(messagePart, (string)error["message"]!, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task WhatTheContractCannotCarryIsRefusedByNameAndTheGatewayKeepsServing()
    {
        string user = """{"role": "user", "content": "Hi?"}""";
        string wav = Upload(File.ReadAllBytes(Clip));
        await AssertRefused($$"""{"model": "m", "n": 2, "messages": [{{user}}]}""", "n", "n must be 1");
        await AssertRefused($$"""{"model": "m", "tools": [], "messages": [{{user}}]}""", "tools", "'tools' is not supported");
        await AssertRefused($$"""{"model": "m", "top_logprobs": 3, "logprobs": true, "messages": [{{user}}]}""", "top_logprobs", "top_logprobs");
        await AssertRefused($$"""{"model": "m", "presence_penalty": 0.5, "messages": [{{user}}]}""", "presence_penalty", "repetition_penalty");
        await AssertRefused($$"""{"model": "m", "stream_options": {"include_usage": true}, "messages": [{{user}}]}""", "stream_options", "stream: true");
        await AssertRefused("""{"messages": [{"role": "user", "content": "Hi?"}]}""", "model", "model is required");
        await AssertRefused("""{"model": "m", "messages": []}""", "messages", "messages is empty");
        await AssertRefused("""{"model": "m", "messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}""",
            "messages", "the last message must be the user's");
        await AssertRefused("""{"model": "m", "messages": [{"role": "tool", "content": "42", "tool_call_id": "x"}]}""", "messages[0].tool_call_id", "not supported");
        await AssertRefused("""{"model": "m", "messages": [{"role": "user", "content": "Hi?"}, {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]}""",
            "messages[1].role", "must come before");
        await AssertRefused($$"""{"model": "m", "messages": [{{UserWithClip(wav, "Key?")}}, {"role": "assistant", "content": "C."}, {{UserWithClip(ById("abc"), "Tempo?")}}]}""",
            "messages[2].content[0]", "second clip");
        await AssertRefused($$"""{"model": "m", "messages": [{{UserWithClip("""{"type": "input_audio", "input_audio": {"data": "%%%", "format": "wav"}}""", "Key?")}}]}""",
            "messages[0].content[0].input_audio.data", "not base64");
        await AssertRefused($$"""{"model": "m", "messages": [{{UserWithClip("""{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "flac"}}""", "Key?")}}]}""",
            "messages[0].content[0].input_audio.format", "'flac'");
        await AssertRefused($$"""{"model": "m", "messages": [{{UserWithClip("""{"type": "image_url", "image_url": {"url": "x"}}""", "Key?")}}]}""",
            "messages[0].content[0].type", "'image_url'");
        // The encoder's own refusal of a file that is not audio names the part that carried it.
        await AssertRefused($$"""{"model": "m", "messages": [{{UserWithClip(Upload("not audio at all"u8.ToArray()), "Key?")}}]}""",
            "messages[0].content[0].input_audio.data", "");
        // The language service's own refusal (a token limit over its maximum) passes through.
        await AssertRefused($$"""{"model": "m", "max_tokens": 1000000, "messages": [{{user}}]}""", "max_tokens", "max_new_tokens");

        var (status, body, response) = await Post($$"""{"model": "m", "max_tokens": 2, "messages": [{{user}}]}""");
        response.Dispose();
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("chat.completion", (string?)body["object"]);
    }

    [Fact]
    public async Task RefusalsAtTheDoorAreInOpenAisShape()
    {
        var (status, body, response) = await Post("""{"model": "m", "messages": [{"role": "user", "content": "Hi?"}]}""", key: null);
        using (response)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, status);
            Assert.Equal("authentication_error", (string?)body["error"]!["type"]);
            Assert.Contains("Bearer", (string?)body["error"]!["message"], StringComparison.Ordinal);
        }

        using (HttpClient limited = Http(SystemFixture.LimitedKey))
        {
            HttpStatusCode last = HttpStatusCode.OK;
            JsonNode? refusal = null;
            for (int i = 0; i < 4 && last != HttpStatusCode.TooManyRequests; i++)
            {
                using HttpResponseMessage r = await limited.GetAsync(new Uri("/v1/models", UriKind.Relative));
                last = r.StatusCode;
                if (last == HttpStatusCode.TooManyRequests)
                {
                    Assert.NotNull(r.Headers.RetryAfter);
                    refusal = JsonNode.Parse(await r.Content.ReadAsStringAsync());
                }
            }
            Assert.Equal(HttpStatusCode.TooManyRequests, last);
            Assert.Equal("rate_limit_error", (string?)refusal!["error"]!["type"]);
            Assert.Equal("resource_exhausted", (string?)refusal["error"]!["code"]);
        }

        using HttpClient http = Http();
        using HttpResponseMessage missing = await http.GetAsync(new Uri("/v1/models/not-this-one", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        JsonNode notFound = JsonNode.Parse(await missing.Content.ReadAsStringAsync())!;
        Assert.Equal("not_found_error", (string?)notFound["error"]!["type"]);
        Assert.Equal("model", (string?)notFound["error"]!["param"]);
        using HttpResponseMessage served = await http.GetAsync(new Uri("/v1/models/llark-tiny-untrained", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
    }

    [Fact]
    public async Task SystemAndEarlierTurnsMapToTheTemplatesTurnsAsOverGrpc()
    {
        byte[] wav = File.ReadAllBytes(Clip);
        string json = $$"""
            {"model": "llark-tiny-untrained", "max_tokens": 6, "ignore_eos": true, "logprobs": true, "seed": 7,
             "messages": [
               {"role": "system", "content": "Answer briefly."},
               {{UserWithClip(Upload(wav), "What key is it in?")}},
               {"role": "assistant", "content": [{"type": "text", "text": "C major."}]},
               {"role": "user", "content": "And the tempo?"}
             ]}
            """;
        var (status, body, response) = await Post(json);
        string id;
        using (response)
        {
            Assert.True(status == HttpStatusCode.OK, body.ToJsonString());
            id = response.Headers.GetValues("x-llark-embedding-id").Single();
        }
        Assert.Equal(id, (string?)body["llark"]!["embedding_id"]);
        JsonNode choice = body["choices"]![0]!;
        JsonArray logprobs = choice["logprobs"]!["content"]!.AsArray();
        Assert.Equal(6, logprobs.Count);
        Assert.All(logprobs, l => Assert.StartsWith("token_id:", (string)l!["token"]!, StringComparison.Ordinal));
        Assert.All(logprobs, l => Assert.True((double)l!["logprob"]! <= 0));

        GenerateFinal grpc = await OverGrpc(id, 6,
            new ChatTurn { Human = "Answer briefly.\n\nWhat key is it in?", Assistant = "C major." },
            new ChatTurn { Human = "And the tempo?" });
        Assert.Equal(grpc.Text, (string?)choice["message"]!["content"]);
        Assert.Equal(grpc.Usage.PromptTokens, (uint)body["usage"]!["prompt_tokens"]!);
    }

    private static async IAsyncEnumerable<string> DataLines(Stream body)
    {
        using var reader = new StreamReader(body);
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal)) yield return line[6..];
        }
    }

    private static HttpRequestMessage StreamRequest(int maxTokens) => new(HttpMethod.Post, new Uri("/v1/chat/completions", UriKind.Relative))
    {
        Content = new StringContent($$"""
            {"model": "m", "stream": true, "stream_options": {"include_usage": true}, "max_tokens": {{maxTokens}}, "ignore_eos": true,
             "messages": [{"role": "user", "content": [{"type": "text", "text": "Describe this clip at length."}]}]}
            """, Encoding.UTF8, "application/json"),
    };

    [Fact]
    public async Task TheStreamEndsWithUsageThenDoneAndACallerGoingAwayStopsTheServer()
    {
        using HttpClient http = Http();
        var events = new List<string>();
        using (HttpRequestMessage request = StreamRequest(5))
        using (HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
            Assert.False(response.Headers.Contains("x-llark-embedding-id"));
            await foreach (string data in DataLines(await response.Content.ReadAsStreamAsync())) events.Add(data);
        }
        Assert.Equal("[DONE]", events[^1]);
        JsonNode usage = JsonNode.Parse(events[^2])!;
        Assert.Empty(usage["choices"]!.AsArray());
        Assert.Equal(5, (int)usage["usage"]!["completion_tokens"]!);
        Assert.Equal("length", (string?)JsonNode.Parse(events[^3])!["choices"]![0]!["finish_reason"]);
        Assert.All(events.Take(events.Count - 2), e => Assert.Null(JsonNode.Parse(e)!["usage"]));

        var scheduler = system.Language.App.Services.GetRequiredService<ModelHost>().Ready().Scheduler;
        StepPause.Of(system.Language).Pause = TimeSpan.FromMilliseconds(5);
        try
        {
            using (HttpRequestMessage request = StreamRequest(300))
            using (HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
            {
                await using IAsyncEnumerator<string> lines = DataLines(await response.Content.ReadAsStreamAsync()).GetAsyncEnumerator();
                for (int i = 0; i < 3; i++) Assert.True(await lines.MoveNextAsync());
                Assert.Equal(1, scheduler.ActiveSequences);
            }
            for (int i = 0; i < 300 && scheduler.ActiveSequences > 0; i++) await Task.Delay(10);
            Assert.Equal(0, scheduler.ActiveSequences);
        }
        finally
        {
            StepPause.Of(system.Language).Pause = TimeSpan.Zero;
        }
    }
}
