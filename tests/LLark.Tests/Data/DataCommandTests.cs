using LLark.Data;
using LLark.Tests.Cli;

namespace LLark.Tests.Data;

/// <summary><c>llark data synth</c> and <c>llark data instruct</c> as processes: exit codes, messages, files.</summary>
public sealed class DataCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llark-datacli-" + Guid.NewGuid().ToString("N"));

    public DataCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void SynthRendersAClipAndThenInstructWritesPairsForIt()
    {
        string data = Path.Combine(_dir, "synth");
        var synth = LlarkProcess.Run("data", "synth", "--out", data, "--clips", "1", "--seconds", "2", "--seed", "4");
        Assert.True(synth.ExitCode == 0, synth.Stderr);
        Assert.Contains("[1/1] synth_000000", synth.Stdout, StringComparison.Ordinal);
        Assert.Contains("rendered 1 clips (0 already there, 0 failed)", synth.Stdout, StringComparison.Ordinal);
        var again = LlarkProcess.Run("data", "synth", "--out", data, "--clips", "1", "--seconds", "2", "--seed", "4");
        Assert.Contains("rendered 0 clips (1 already there, 0 failed)", again.Stdout, StringComparison.Ordinal);

        string manifest = Path.Combine(data, "manifest.jsonl");
        File.AppendAllText(manifest, "not json\n");
        string pairs = Path.Combine(_dir, "pairs.jsonl");
        var instruct = LlarkProcess.Run("data", "instruct", "--manifest", manifest, "--out", pairs, "--per-clip", "5");
        Assert.True(instruct.ExitCode == 0, instruct.Stderr);
        Assert.Contains("manifest.jsonl:2: not valid JSON", instruct.Stderr, StringComparison.Ordinal);
        Assert.StartsWith("wrote ", instruct.Stdout, StringComparison.Ordinal);
        List<InstructionPair> written = JsonLines.Read<InstructionPair>(pairs, []);
        Assert.True(written.Count >= 5);
        Assert.All(written, p => Assert.Equal("synth_000000", p.ClipId));
    }

    [Fact]
    public void ABadSoundFontExitsWithBadInputAndSaysWhichFile()
    {
        string missing = Path.Combine(_dir, "missing.sf2");
        var output = LlarkProcess.Run("data", "synth", "--out", Path.Combine(_dir, "x"), "--clips", "1", "--soundfont", missing);
        Assert.Equal(4, output.ExitCode);
        Assert.Equal($"error: soundfont not found: {missing}", output.Stderr.Trim());
    }

    [Fact]
    public void AnUnreachableLlmEndpointExitsUnavailable()
    {
        string manifest = Path.Combine(_dir, "m.jsonl");
        File.WriteAllText(manifest, JsonLines.Serialize(InstructTests.SynthLike(0)) + "\n");
        int port = TestSupport.LoopbackHost.FreePort();
        var output = LlarkProcess.Run("data", "instruct", "--manifest", manifest, "--out", Path.Combine(_dir, "p.jsonl"),
            "--llm-url", $"http://127.0.0.1:{port}", "--llm-model", "m", "--llm-attempts", "1");
        Assert.Equal(5, output.ExitCode);
        Assert.StartsWith("error: cannot reach", output.Stderr.Trim(), StringComparison.Ordinal);
        var usage = LlarkProcess.Run("data", "instruct", "--manifest", manifest, "--out", Path.Combine(_dir, "p.jsonl"), "--llm-url", "http://127.0.0.1:1");
        Assert.Equal(2, usage.ExitCode);
    }
}
