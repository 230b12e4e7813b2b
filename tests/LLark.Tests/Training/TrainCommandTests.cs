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

    [Fact]
    public async Task CtrlCSavesTheStateAndExits130()
    {
        using var dir = new TempDirectory();
        string config = WriteConfig(dir.Path, steps: 100_000);
        string outDir = Path.Combine(dir.Path, "out");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "llark.dll"), "train", "--config", config, "--out", outDir }) start.ArgumentList.Add(a);
        using Process process = Process.Start(start)!;
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        string? line;
        while ((line = await process.StandardOutput.ReadLineAsync()) is not null && !line.StartsWith("step 5/", StringComparison.Ordinal)) { }
        Assert.NotNull(line);
        using (Process kill = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) kill.WaitForExit();
        await process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await process.WaitForExitAsync(timeout.Token);
        Assert.Equal(130, process.ExitCode);
        Assert.Contains("--resume", await stderr, StringComparison.Ordinal);
        using JsonDocument latest = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "state", "latest.json")));
        string folder = latest.RootElement.GetProperty("folder").GetString()!;
        using JsonDocument state = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "state", folder, "state.json")));
        int saved = state.RootElement.GetProperty("step").GetInt32();
        Assert.True(saved >= 5, $"saved at step {saved}");
        Assert.Equal(saved, File.ReadAllLines(Path.Combine(outDir, "loss.jsonl")).Length);
    }
}
