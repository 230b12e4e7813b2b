using System.Text.Json;
using LLark.Tests.TestSupport;
using LLark.Tests.Cli;

namespace LLark.Tests.Bench;

/// <summary><c>llark-bench prefix</c> on the tiny LLark: what it reports, not how fast (timings are the benchmark's to print).</summary>
public sealed class BenchPrefixCommandTests
{
    [Fact]
    public void PrefixReportsWhatEachRequestTookFromTheCacheAndTheQuestionsSentTogether()
    {
        var run = LlarkProcess.RunBench("prefix", "--model", TinyLLark.Directory, "--audio-frames", "40", "--rounds", "1", "--new-tokens", "4",
            "--block-tokens", "8", "--concurrent", "4", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        JsonElement result = JsonDocument.Parse(run.Stdout).RootElement;
        Dictionary<string, JsonElement> rows = result.GetProperty("rows").EnumerateArray().ToDictionary(r => r.GetProperty("request").GetString()!);
        Assert.Equal(["cold", "another", "follow-up"], rows.Keys);
        foreach (string request in new[] { "another", "follow-up" })
        {
            int prompt = rows[request].GetProperty("prompt_tokens").GetInt32(), cached = rows[request].GetProperty("cached_tokens").GetInt32();
            // The clip's 40 frames and the text before them come from the cache; at least the last position is prefilled.
            Assert.InRange(cached, 41, prompt - 1);
        }
        JsonElement[] turns = [.. result.GetProperty("conversation").EnumerateArray()];
        Assert.Equal(5, turns.Length);
        // The first turn is about a new clip: its 40 frames and what follows them are prefilled.
        Assert.InRange(turns[0].GetProperty("prefilled").GetInt32(), 41, turns[0].GetProperty("prompt_tokens").GetInt32());
        foreach (JsonElement turn in turns.Skip(1))
        {
            // Each later turn prefills what it adds (and at most a block of the resent answer that re-tokenized differently).
            Assert.InRange(turn.GetProperty("prefilled").GetInt32(), 1, turn.GetProperty("new_positions").GetInt32() + 8);
        }
        JsonElement together = result.GetProperty("concurrent");
        Assert.Equal(4, together.GetProperty("questions").GetInt32());
        Assert.True(together.GetProperty("prefilled_on").GetInt64() < together.GetProperty("prefilled_off").GetInt64());
        Assert.True(together.GetProperty("tokens_per_s_on").GetDouble() > 0 && together.GetProperty("tokens_per_s_off").GetDouble() > 0);
    }
}
