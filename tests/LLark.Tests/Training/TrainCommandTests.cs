using System.Diagnostics;
using System.Text.Json;
using LLark.Tests.Checkpoints;
using LLark.Tests.Cli;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Training;

public sealed class TrainCommandTests
{
    private static string WriteConfig(string dir, int steps)
    {
        TrainingFixtures.WriteSet(dir);
        string path = Path.Combine(dir, "tiny.json");
        File.WriteAllText(path, $$"""
            {
              "data": { "pairs": "pairs.jsonl", "embeddings": "embeddings", "validation_fraction": 0 },
              "model": { "base": {{JsonSerializer.Serialize(TinyLLark.Directory)}} },
              "mode": "full",
              "optimizer": { "lr": 1e-3, "warmup_ratio": 0.1 },
              "batch_size": 4,
              "max_length": 256,
              "steps": {{steps}},
              "save_every": 2,
              "audio": { "fps": 25, "encoder": "jukebox-tiny" }
            }
            """);
        return path;
    }

    [Fact]
    public void TrainWritesAServableCheckpointAndReportsJson()
    {
        using var dir = new TempDirectory();
        string config = WriteConfig(dir.Path, steps: 3);
        string outDir = Path.Combine(dir.Path, "out");
        LlarkProcess.Output run = LlarkProcess.Run("train", "--config", config, "--out", outDir, "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using JsonDocument result = JsonDocument.Parse(run.Stdout);
        Assert.Equal("completed", result.RootElement.GetProperty("outcome").GetString());
        Assert.Equal(3, result.RootElement.GetProperty("step").GetInt32());
        foreach (string file in new[] { "config.json", "model.safetensors", "tokenizer.model", "added_tokens.json" })
            Assert.True(File.Exists(Path.Combine(outDir, "model", file)), file);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(outDir, "loss.jsonl")).Length);
    }

    [Fact]
    public void ABadConfigExitsWithUsageNamingTheField()
    {
        using var dir = new TempDirectory();
        string config = Path.Combine(dir.Path, "bad.json");
        File.WriteAllText(config, """{"data": {"pairs": "p.jsonl", "embeddings": "e"}, "model": {"base": "b"}, "batch_size": 0}""");
        LlarkProcess.Output run = LlarkProcess.Run("train", "--config", config);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("batch_size", run.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("INT")]
    [InlineData("TERM")]
    public async Task ASignalSavesTheStateAndExits130(string signal)
    {
        using var dir = new TempDirectory();
        string config = WriteConfig(dir.Path, steps: 100_000);
        string outDir = Path.Combine(dir.Path, "out");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "llark.dll"), "train", "--config", config, "--out", outDir }) start.ArgumentList.Add(a);
        using Process process = Process.Start(start)!;
        try
        {
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            string? line;
            while ((line = await process.StandardOutput.ReadLineAsync(timeout.Token)) is not null && !line.StartsWith("step 5/", StringComparison.Ordinal)) { }
            Assert.NotNull(line);
            // A process started from a shell's background job inherits SIGINT ignored (bash does that without job
            // control), and then no handler can see it: say so instead of waiting for a stop that cannot come.
            if (signal == "INT")
                Assert.False(SignalIgnored(2), "this test process ignores SIGINT, and so does the llark it started: run the tests in the foreground");
            using (Process kill = Process.Start("kill", ["-" + signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) kill.WaitForExit();
            await process.StandardOutput.ReadToEndAsync(timeout.Token);
            await process.WaitForExitAsync(timeout.Token);
            Assert.Equal(130, process.ExitCode);
            string errors = await stderr;
            Assert.Contains(signal == "INT" ? "stopping on Ctrl-C" : "stopping on SIGTERM", errors, StringComparison.Ordinal);
            Assert.Contains("--resume", errors, StringComparison.Ordinal);
            using JsonDocument latest = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "state", "latest.json")));
            string folder = latest.RootElement.GetProperty("folder").GetString()!;
            using JsonDocument state = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "state", folder, "state.json")));
            int saved = state.RootElement.GetProperty("step").GetInt32();
            Assert.True(saved >= 5, $"saved at step {saved}");
            Assert.Equal(saved, File.ReadAllLines(Path.Combine(outDir, "loss.jsonl")).Length);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    /// <summary>Whether this process ignores signal <paramref name="number"/> (the SigIgn mask of /proc/self/status).</summary>
    private static bool SignalIgnored(int number)
    {
        string? mask = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return mask is not null && (Convert.ToUInt64(mask["SigIgn:".Length..].Trim(), 16) & (1UL << (number - 1))) != 0;
    }
}
