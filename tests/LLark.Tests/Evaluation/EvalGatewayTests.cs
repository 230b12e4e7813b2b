using System.Text.Json;
using LLark.Tests.Cli;
using LLark.Tests.EndToEnd;
using LLark.Tests.Gateway;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Evaluation;

/// <summary><c>llark eval --gateway</c> against the whole system on loopback (real encoder, language service and gateway).</summary>
public sealed class EvalGatewayTests(SystemFixture system) : IClassFixture<SystemFixture>, IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("llark-eval-gw-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static List<JsonElement> Answers(string jsonl) =>
        [.. File.ReadAllLines(jsonl).Select(l => JsonDocument.Parse(l).RootElement).Where(e => e.GetProperty("type").GetString() == "answer")];

    [Fact]
    public void EvalThroughTheGatewayAnswersAsTheLocalModelDoes()
    {
        File.Copy(Path.Combine(RepoPaths.Root, "models", "clips", "tiny-test-4s.wav"), Path.Combine(dir, "a.wav"));
        File.WriteAllText(Path.Combine(dir, "bad.wav"), "not audio");
        string manifest = Path.Combine(dir, "manifest.jsonl");
        File.WriteAllLines(manifest,
        [
            """{"id":"a","audio":"a.wav","tempo_bpm":120,"key":"D major","instruments":["Acoustic Grand Piano"],"genre":"pop"}""",
            """{"id":"bad","audio":"bad.wav","tempo_bpm":100}""",
            """{"id":"gone","audio":"gone.wav","genre":"jazz"}""",
        ]);
        string[] common = ["eval", "--manifest", manifest, "--questions", "1", "--max-new-tokens", "6"];
        var remote = LlarkProcess.Run([.. common, "--out", Path.Combine(dir, "gw"), "--gateway", system.Gateway.GrpcAddress.ToString(),
            "--api-key", GatewayTestHost.MainKey]);
        Assert.True(remote.ExitCode == 0, remote.Stderr);
        Assert.Contains("bad: skipped: the encoder refused", remote.Stderr, StringComparison.Ordinal);
        Assert.Contains("gone: skipped: clip not found", remote.Stderr, StringComparison.Ordinal);
        List<JsonElement> viaGateway = Answers(Path.Combine(dir, "gw", "eval.jsonl"));
        Assert.Equal(5, viaGateway.Count);  // four direct questions and one description
        Assert.All(viaGateway, a => Assert.StartsWith("gateway:", a.GetProperty("model").GetString(), StringComparison.Ordinal));

        // The system under the gateway serves the tiny models; the local run names them (its default is the demo LLark).
        var local = LlarkProcess.Run([.. common, "--out", Path.Combine(dir, "local"), "--local", "--model", TinyLLark.Directory,
            "--encoder", Path.Combine(RepoPaths.Root, "models", "jukebox-tiny")]);
        Assert.True(local.ExitCode == 0, local.Stderr);
        List<JsonElement> inProcess = Answers(Path.Combine(dir, "local", "eval.jsonl"));
        // The same encoder and checkpoint, greedy decoding, the same prompt template: the same answers.
        Assert.Equal(inProcess.Select(a => a.GetProperty("text").GetString()), viaGateway.Select(a => a.GetProperty("text").GetString()));
    }

    [Fact]
    public void AWrongKeyStopsTheRunWithTheGatewaysExitCode()
    {
        File.Copy(Path.Combine(RepoPaths.Root, "models", "clips", "tiny-test-4s.wav"), Path.Combine(dir, "a.wav"));
        string manifest = Path.Combine(dir, "manifest.jsonl");
        File.WriteAllText(manifest, """{"id":"a","audio":"a.wav","tempo_bpm":120}""" + "\n");
        var run = LlarkProcess.Run("eval", "--manifest", manifest, "--out", Path.Combine(dir, "o"), "--gateway", system.Gateway.GrpcAddress.ToString(),
            "--api-key", "wrong-key-0123456789");
        Assert.Equal(6, run.ExitCode);
    }
}
