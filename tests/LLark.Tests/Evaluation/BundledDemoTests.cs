using System.Text.Json;
using LLark.Tests.Cli;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Evaluation;

/// <summary>
/// The bundled demo LLark (models/llark-demo with models/jukebox-demo, made by tools/make-demo.sh) is what the tools run
/// when no model is named, and on the bundled held-out clip (TimGM6mb, seed 2002, synth_000156: flute lead, F major,
/// 117 BPM) it answers from the audio. Greedy decoding, so the answers are fixed; a change to the engine, the encoder or
/// the bundle that changes them fails here.
/// </summary>
public sealed class BundledDemoTests
{
    private static string Clip => Path.Combine(RepoPaths.Root, "models", "clips", "demo-heldout-flute-f-major.wav");

    private static string Ask(string question)
    {
        var run = LlarkProcess.Run("ask", "--local", "--json", "--max-new-tokens", "40", Clip, question);
        Assert.True(run.ExitCode == 0, run.Stderr);
        using JsonDocument json = JsonDocument.Parse(run.Stdout);
        Assert.EndsWith("llark-demo", json.RootElement.GetProperty("model").GetString(), StringComparison.Ordinal);
        return json.RootElement.GetProperty("text").GetString()!;
    }

    [Fact]
    public void TheDemoNamesTheLeadInstrumentKeyAndTempoOfTheBundledClip()
    {
        Assert.Contains("flute", Ask("What instrument plays the melody here?"), StringComparison.OrdinalIgnoreCase);
        Assert.Contains("F major", Ask("What key is this in?"), StringComparison.Ordinal);
        // 121 BPM: within the 4 % of 117 that ACC1 allows.
        int bpm = int.Parse(System.Text.RegularExpressions.Regex.Match(Ask("What is the tempo in BPM?"), "[0-9]+").Value,
            System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(bpm, 117 * 0.96, 117 * 1.04);
    }
}
