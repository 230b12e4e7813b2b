using LLark.Tests.Cli;

namespace LLark.Tests.Bench;

/// <summary><c>llark-bench embed</c> as a process, on the tiny Jukebox that <c>llark convert-jukebox</c> writes.</summary>
public sealed class BenchEmbedCommandTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("llark-bench-embed-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    [Trait("Category", "Heavy")]
    public void BenchEmbedPrintsSpeedAndThe5bMemoryPlan()
    {
        var run = LlarkProcess.RunBench("embed", "--encoder", JukeboxCommandTests.Convert(dir), "--seconds", "2", "--repeat", "1", "--json",
            "--spectral", Path.Combine(TestSupport.RepoPaths.Root, "models", "spectral"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        var result = System.Text.Json.JsonDocument.Parse(run.Stdout).RootElement;
        Assert.True(result.GetProperty("audio_seconds_per_second").GetDouble() > 0);
        Assert.Equal(4L * (2_560_963_200 + 299_296), result.GetProperty("real_5b").GetProperty("fp32_weight_bytes").GetInt64());
        AssertSpectralRow(result.GetProperty("spectral"));
    }

    private static void AssertSpectralRow(System.Text.Json.JsonElement spectral)
    {
        Assert.Equal("spectral-v1/fps25", spectral.GetProperty("encoder").GetString());
        Assert.True(spectral.GetProperty("seconds_per_clip").GetDouble() > 0);
    }
}
