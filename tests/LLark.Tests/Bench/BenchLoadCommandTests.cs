using System.Globalization;
using System.Text.Json;
using LLark.Tests.Cli;
using LLark.Tests.EndToEnd;
using LLark.Tests.Encoder.Service;
using LLark.Tests.Gateway;

namespace LLark.Tests.Bench;

/// <summary><c>llark-bench load</c> as a process, against the whole system on loopback (tiny models, the real gateway).</summary>
public sealed class BenchLoadCommandTests(SystemFixture system) : IClassFixture<SystemFixture>, IDisposable
{
    private readonly string clip = Path.Combine(Path.GetTempPath(), $"llark-bench-load-{Guid.NewGuid():N}.wav");

    public void Dispose() => File.Delete(clip);

    [Fact]
    [Trait("Category", "Heavy")]
    public void LoadRunsATimedPhaseASoakAndUploadsAndReportsThisProcesssMemory()
    {
        File.WriteAllBytes(clip, EncoderHarness.Wav(11, seconds: 1));
        var run = LlarkProcess.RunBench("load", "--gateway", system.Gateway.GrpcAddress.ToString(), "--api-key", GatewayTestHost.MainKey, "--clip", clip,
            "--streams", "2", "--seconds", "3", "--soak", "4", "--soak-mark", "2", "--new-tokens", "4", "--uploads", "2", "--idle-seconds", "0",
            "--pids", $"tests={Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        JsonElement[] phases = [.. JsonDocument.Parse(run.Stdout).RootElement.GetProperty("phases").EnumerateArray()];
        Assert.Equal(["timed", "soak", "uploads"], phases.Select(p => p.GetProperty("phase").GetString()));
        foreach (JsonElement phase in phases)
        {
            Assert.Empty(phase.GetProperty("errors").EnumerateObject());
            int requests = phase.GetProperty("requests").GetInt32();
            Assert.True(requests > 0);
            bool uploads = phase.GetProperty("phase").GetString() == "uploads";
            Assert.Equal(uploads ? 0 : 4L * requests, phase.GetProperty("tokens").GetInt64());
            Assert.True(phase.GetProperty("ttft_p50_ms").GetDouble() > 0);
            JsonElement memory = Assert.Single(phase.GetProperty("memory").EnumerateArray());
            Assert.Equal(Environment.ProcessId, memory.GetProperty("pid").GetInt32());
            Assert.True(memory.GetProperty("rss_end_bytes").GetInt64() > 0);
            Assert.True(memory.GetProperty("rss_peak_bytes").GetInt64() >= memory.GetProperty("rss_start_bytes").GetInt64());
            // The soak's memory after its first requests, and the uploads' after their idle wait; none for the timed phase.
            Assert.Equal(phase.GetProperty("phase").GetString() != "timed", memory.GetProperty("rss_mark_bytes").ValueKind == JsonValueKind.Number);
        }
        Assert.Equal(4, phases[1].GetProperty("requests").GetInt32());
        Assert.Equal(2, phases[2].GetProperty("requests").GetInt32());
    }
}
