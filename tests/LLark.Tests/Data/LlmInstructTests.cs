using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using LLark.Data;
using LLark.Data.Instruct;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LLark.Tests.Data;

/// <summary>
/// A stand-in for an OpenAI-compatible chat endpoint on a loopback port: it answers from the clip metadata it is sent
/// (so the test can check the request), fails once for a "flaky" clip, and always replies with prose for a "mumble" clip.
/// </summary>
internal sealed class FakeChatServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, int> _calls = new();

    private FakeChatServer(WebApplication app) => _app = app;

    public string Url { get; private set; } = "";

    public ConcurrentBag<JsonObject> Requests { get; } = [];

    public int Calls(string id) => _calls.TryGetValue(id, out int n) ? n : 0;

    public static async Task<FakeChatServer> StartAsync(string? requiredKey = null)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        WebApplication app = builder.Build();
        var server = new FakeChatServer(app);
        app.MapPost("/v1/chat/completions", async (HttpContext http) =>
        {
            if (requiredKey is not null && http.Request.Headers.Authorization.ToString() != $"Bearer {requiredKey}")
                return Results.StatusCode(401);
            JsonObject body = (await JsonNode.ParseAsync(http.Request.Body))!.AsObject();
            server.Requests.Add(body);
            JsonObject clip = JsonNode.Parse(body["messages"]![1]!["content"]!.GetValue<string>())!.AsObject();
            string id = clip["id"]!.GetValue<string>();
            int call = server._calls.AddOrUpdate(id, 1, (_, n) => n + 1);
            if (id == "flaky" && call == 1) return Results.StatusCode(503);
            string content = id == "mumble"
                ? "I'm sorry, I can only describe music in prose: it is lovely."
                : "Here you go:\n```json\n" + new JsonArray(
                    new JsonObject { ["family"] = "understanding", ["task"] = "tempo", ["query"] = "How fast does it go?", ["response"] = $"About {clip["tempo_bpm"]} BPM." },
                    new JsonObject { ["family"] = "captioning", ["query"] = "Describe it.", ["response"] = $"A {clip["style"]} piece in {clip["key"]}." },
                    new JsonObject { ["family"] = "reasoning", ["task"] = "scene", ["query"] = "Where would it fit?", ["response"] = "A quiet evening." },
                    new JsonObject { ["family"] = "gossip", ["query"] = "Who is the singer dating?", ["response"] = "No idea." },
                    new JsonObject { ["family"] = "understanding", ["query"] = "Which key is this piece in?", ["response"] = "Held out." }).ToJsonString() + "\n```";
            return Results.Json(new JsonObject
            {
                ["id"] = "chatcmpl-1",
                ["object"] = "chat.completion",
                ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = content }, ["finish_reason"] = "stop" }),
            });
        });
        await app.StartAsync();
        server.Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

public sealed class LlmInstructTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llark-llm-" + Guid.NewGuid().ToString("N"));

    public LlmInstructTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private Manifest Clips(params string[] ids)
    {
        string path = Path.Combine(_dir, "manifest.jsonl");
        File.WriteAllLines(path, ids.Select((id, i) => JsonLines.Serialize(InstructTests.SynthLike(i) with { Id = id })));
        return Manifest.Load(path);
    }

    [Fact]
    public async Task PairsComeFromTheEndpointAndAnUnusableReplyIsRetriedThenSkipped()
    {
        await using FakeChatServer server = await FakeChatServer.StartAsync();
        Manifest manifest = Clips("a", "flaky", "mumble", "b");
        using var http = new HttpClient();
        var client = new LlmClient(http, server.Url, "stand-in-7b", attempts: 3, backoff: TimeSpan.FromMilliseconds(10));
        var log = new ConcurrentBag<string>();
        InstructResult result = await InstructDataset.FromLlmAsync(manifest, client, parallel: 2, log.Add);

        Assert.Equal(["a", "a", "a", "flaky", "flaky", "flaky", "b", "b", "b"], result.Pairs.Select(p => p.ClipId));
        Assert.Equal(InstructionPair.Families, result.Pairs.Where(p => p.ClipId == "a").Select(p => p.Family));
        ClipRecord a = manifest.Clips[0];
        Assert.Contains($"About {a.TempoBpm} BPM.", result.Pairs.Select(p => p.Response));
        Assert.DoesNotContain(result.Pairs, p => p.Family == "gossip" || InstructionGenerator.IsReserved(p.Query));
        string skipped = Assert.Single(result.SkippedClips);
        Assert.StartsWith("mumble: the reply holds no JSON array", skipped, StringComparison.Ordinal);
        Assert.Equal((3, 2, 1), (server.Calls("mumble"), server.Calls("flaky"), server.Calls("a")));
        Assert.Contains(log, line => line.Contains("mumble: skipped after 3 attempts", StringComparison.Ordinal));

        JsonObject request = server.Requests.First();
        Assert.Equal("stand-in-7b", request["model"]!.GetValue<string>());
        Assert.Equal(Templates.LlmSystemPrompt, request["messages"]![0]!["content"]!.GetValue<string>());
        JsonObject metadata = JsonNode.Parse(request["messages"]![1]!["content"]!.GetValue<string>())!.AsObject();
        Assert.False(metadata.ContainsKey("audio"));
        Assert.True(metadata.ContainsKey("tempo_bpm") && metadata.ContainsKey("key") && metadata.ContainsKey("chords"));
    }

    [Fact]
    public async Task ARefusedKeyStopsTheRunAndAnUnreachableEndpointIsUnavailable()
    {
        await using FakeChatServer server = await FakeChatServer.StartAsync(requiredKey: "right");
        Manifest manifest = Clips("a");
        using var http = new HttpClient();
        await Assert.ThrowsAsync<LlmUnauthorizedException>(() =>
            InstructDataset.FromLlmAsync(manifest, new LlmClient(http, server.Url, "m", key: "wrong", backoff: TimeSpan.Zero)));
        InstructResult ok = await InstructDataset.FromLlmAsync(manifest, new LlmClient(http, server.Url, "m", key: "right", backoff: TimeSpan.Zero));
        Assert.Equal(3, ok.Pairs.Count);

        int port = TestSupport.LoopbackHost.FreePort();
        await Assert.ThrowsAsync<LlmUnavailableException>(() =>
            InstructDataset.FromLlmAsync(manifest, new LlmClient(http, $"http://127.0.0.1:{port}", "m", attempts: 2, backoff: TimeSpan.FromMilliseconds(10))));
    }

    [Theory]
    [InlineData("{\"choices\": []}", "not a chat completion")]
    [InlineData("{\"choices\": [{\"message\": {\"content\": \"[{\\\"family\\\": }]\"}}]}", "the reply's array is not valid JSON")]
    [InlineData("{\"choices\": [{\"message\": {\"content\": \"[{\\\"family\\\": \\\"captioning\\\", \\\"query\\\": \\\"\\\", \\\"response\\\": \\\"x\\\"}]\"}}]}", "none of the reply's 1 items")]
    public void MalformedCompletionsAreRejectedWithAReason(string completion, string reason)
    {
        (IReadOnlyList<InstructionPair> pairs, _, string? problem) = LlmClient.Parse("c", completion);
        Assert.Empty(pairs);
        Assert.StartsWith(reason, problem, StringComparison.Ordinal);
    }
}
