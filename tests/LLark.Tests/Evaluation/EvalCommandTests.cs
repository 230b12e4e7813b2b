using System.Text.Json;
using LLark.Evaluation;
using LLark.Tests.Cli;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Evaluation;

/// <summary><c>llark eval --local</c> and <c>llark ask --local</c> as processes, on the bundled tiny untrained model.</summary>
public sealed class EvalCommandTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("llark-eval-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static string Clip => Path.Combine(RepoPaths.Root, "models", "clips", "tiny-test-4s.wav");

    private string WriteManifest()
    {
        File.Copy(Clip, Path.Combine(dir, "a.wav"));
        File.Copy(Clip, Path.Combine(dir, "b.wav"));
        File.WriteAllText(Path.Combine(dir, "bad.wav"), "RIFF but not really a wave file");
        string manifest = Path.Combine(dir, "manifest.jsonl");
        File.WriteAllLines(manifest,
        [
            """{"id":"a","audio":"a.wav","tempo_bpm":120,"key":"F# minor","instruments":["Acoustic Guitar (steel)","Drums"],"genre":"rock"}""",
            """{"id":"b","audio":"b.wav","tempo_bpm":95,"key":"Bb major","instruments":["Violin"],"genre":"classical"}""",
            """{"id":"c","audio":"missing.wav","tempo_bpm":100,"key":"C major"}""",
            """{"id":"d","audio":"bad.wav","tempo_bpm":100}""",
            """{"id":"e","audio": broken""",
        ]);
        return manifest;
    }

    private static List<JsonElement> Lines(string path) =>
        [.. File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => { try { return JsonDocument.Parse(l).RootElement; } catch (JsonException) { return default; } })
            .Where(e => e.ValueKind == JsonValueKind.Object)];

    [Fact]
    public void EvalScoresTwoClipsReportsBadOnesWritesPlotsAndResumes()
    {
        string manifest = WriteManifest();
        string output = Path.Combine(dir, "out");
        string[] common = ["eval", "--manifest", manifest, "--local", "--out", output, "--questions", "1", "--max-new-tokens", "6"];

        var first = LlarkProcess.Run([.. common, "--limit", "1"]);
        Assert.True(first.ExitCode == 0, first.Stderr);
        string jsonl = Path.Combine(output, "eval.jsonl");
        // Four direct questions (one a task) and one open question (a description).
        Assert.Equal(5, Lines(jsonl).Count(l => l.GetProperty("type").GetString() == "answer"));
        Assert.Contains("manifest line 5 skipped", first.Stderr, StringComparison.Ordinal);

        var second = LlarkProcess.Run(common);
        Assert.True(second.ExitCode == 0, second.Stderr);
        Assert.Contains("resuming: 5 answers", second.Stderr, StringComparison.Ordinal);
        Assert.Contains("c: skipped: clip not found", second.Stderr, StringComparison.Ordinal);
        Assert.Contains("d: skipped", second.Stderr, StringComparison.Ordinal);
        List<JsonElement> answers = [.. Lines(jsonl).Where(l => l.GetProperty("type").GetString() == "answer")];
        Assert.Equal(10, answers.Count);
        Assert.Equal(10, answers.Select(a => (a.GetProperty("clip").GetString(), a.GetProperty("question").GetString())).Distinct().Count());
        Assert.Equal(2, Lines(jsonl).Count(l => l.GetProperty("type").GetString() == "baseline"));

        string[] table = second.Stdout.Split('\n');
        Assert.StartsWith("task", table[0], StringComparison.Ordinal);
        foreach (string column in new[] { "metric", "model", "DSP baseline", "chance", "n" }) Assert.Contains(column, table[0], StringComparison.Ordinal);
        foreach (string row in new[] { "tempo     acc1", "tempo     acc2", "key       mirex_weighted", "instrument  accuracy", "genre     accuracy" })
            Assert.Contains(table, l => l.StartsWith(row.Split(' ')[0], StringComparison.Ordinal) && l.Contains(row.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], StringComparison.Ordinal));

        using (JsonDocument report = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "eval.json"))))
        {
            JsonElement root = report.RootElement;
            Assert.Equal(2, root.GetProperty("clips").GetArrayLength());
            Assert.Equal(5, root.GetProperty("clips")[0].GetProperty("answers").GetArrayLength());
            string[] skipped = [.. root.GetProperty("skipped").EnumerateArray().Select(s => s.GetProperty("clip").GetString()!)];
            Assert.Contains("c", skipped);
            Assert.Contains("d", skipped);
            Assert.Equal(5, root.GetProperty("manifest_errors")[0].GetProperty("line").GetInt32());
            JsonElement tempo = root.GetProperty("summary").EnumerateArray().First(r => r.GetProperty("metric").GetString() == "acc2");
            Assert.Equal(2, tempo.GetProperty("n").GetInt32());
            Assert.Equal(JsonValueKind.Number, tempo.GetProperty("baseline").ValueKind);
            Assert.Equal(JsonValueKind.Number, tempo.GetProperty("chance").ValueKind);
        }
        foreach (string png in new[] { "tempo_scatter.png", "key_confusion.png", "key_confusion_baseline.png" })
            Assert.True(PngFile.Read(Path.Combine(output, png)).DrawnPixels() > 1000, png);

        // An interrupted run: the last answer lost and a torn line left behind. The rerun asks only what is missing.
        string[] kept = File.ReadAllLines(jsonl);
        int last = Array.FindLastIndex(kept, l => l.Contains("\"type\":\"answer\"", StringComparison.Ordinal));
        File.WriteAllLines(jsonl, kept.Where((_, i) => i != last));
        File.AppendAllText(jsonl, """{"type":"answer","clip":"b","que""");
        var third = LlarkProcess.Run(common);
        Assert.True(third.ExitCode == 0, third.Stderr);
        Assert.Contains("ignored", third.Stderr, StringComparison.Ordinal);
        Assert.Contains("b: 1 answers", third.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("a: 5 answers", third.Stderr, StringComparison.Ordinal);
        Assert.Equal(10, Lines(jsonl).Count(l => l.GetProperty("type").GetString() == "answer"));
    }

    [Fact]
    public void EvalNeedsASource()
    {
        var run = LlarkProcess.Run("eval", "--manifest", WriteManifest(), "--out", Path.Combine(dir, "o"));
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--gateway", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void AskLocalPrintsOneJsonObject()
    {
        var run = LlarkProcess.Run("ask", "--local", "--json", "--max-new-tokens", "5", Clip, "What is the tempo of this song in BPM?");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using JsonDocument json = JsonDocument.Parse(run.Stdout);
        JsonElement root = json.RootElement;
        Assert.Equal(JsonValueKind.String, root.GetProperty("text").ValueKind);
        Assert.True(root.GetProperty("finish_reason").GetString() is "length" or "stop" or "eos", root.GetProperty("finish_reason").GetString());
        Assert.InRange(root.GetProperty("generated_tokens").GetInt32(), 1, 5);
        // The bundled demo LLark reads 5 fps frames: 4 s of audio is 20.
        Assert.Equal(20, root.GetProperty("audio_frames").GetInt32());
        Assert.True(root.GetProperty("prompt_tokens").GetInt32() > 20);
        Assert.EndsWith("llark-demo", root.GetProperty("model").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void AskLocalWithInt8WeightsAnswersAndTheOptionNeedsLocal()
    {
        var run = LlarkProcess.Run("ask", "--local", "--weights", "int8", "--json", "--max-new-tokens", "5", Clip, "What is the tempo of this song in BPM?");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using JsonDocument json = JsonDocument.Parse(run.Stdout);
        Assert.InRange(json.RootElement.GetProperty("generated_tokens").GetInt32(), 1, 5);
        var bad = LlarkProcess.Run("ask", "--local", "--weights", "int4", Clip, "What is the tempo?");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("--weights: 'int4' is not fp32, bf16 or int8", bad.Stderr, StringComparison.Ordinal);
        var notLocal = LlarkProcess.Run("ask", "--weights", "int8", "--gateway", "http://127.0.0.1:9", Clip, "What is the tempo?");
        Assert.NotEqual(0, notLocal.ExitCode);
        Assert.Contains("go with --local", notLocal.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void AskLocalStreamsTheSameTextAsItsJson()
    {
        string[] args = ["ask", "--local", "--max-new-tokens", "5", Clip, "Which key is this piece in?"];
        var streamed = LlarkProcess.Run(args);
        var json = LlarkProcess.Run([.. args, "--json"]);
        Assert.True(streamed.ExitCode == 0, streamed.Stderr);
        using JsonDocument doc = JsonDocument.Parse(json.Stdout);
        Assert.Equal(doc.RootElement.GetProperty("text").GetString() + "\n", streamed.Stdout);
    }

    [Fact]
    public void AskLocalRefusesAFrameRateTheCheckpointWasNotTrainedOn()
    {
        var run = LlarkProcess.Run("ask", "--local", "--fps", "10", Clip, "Which key is this piece in?");
        Assert.Equal(3, run.ExitCode);
        Assert.Contains("5 fps", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void AskLocalRefusesACheckpointFasterThanTheEncoder()
    {
        string model = Path.Combine(dir, "model");
        Directory.CreateDirectory(model);
        foreach (string f in Directory.GetFiles(Path.Combine(RepoPaths.Root, "models", "llark-tiny-untrained")))
            File.Copy(f, Path.Combine(model, Path.GetFileName(f)));
        string config = Path.Combine(model, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"mm_audio_fps\": 25", "\"mm_audio_fps\": 400", StringComparison.Ordinal));
        var run = LlarkProcess.Run("ask", "--local", "--model", model, "--encoder", Path.Combine(RepoPaths.Root, "models", "jukebox-tiny"), Clip,
            "Which key is this piece in?");
        Assert.Equal(3, run.ExitCode);
        Assert.Contains("tokens a second", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void AskLocalRefusesAnEncoderOfAnotherWidth()
    {
        // The tiny Jukebox at width 24 (3 heads of 2): a real encoder folder, just not the one this checkpoint projects.
        var tiny = System.Text.Json.JsonSerializer.Deserialize<LLark.Encoder.Engine.Model.JukeboxEncoderConfig>(
            File.ReadAllText(Path.Combine(RepoPaths.Root, "models", "jukebox-tiny", "jukebox_encoder.json")))!;
        string encoder = Path.Combine(dir, "narrow-encoder");
        LLark.Encoder.Engine.Model.RandomJukeboxCheckpoint.Write(tiny with { Prior = tiny.Prior with { Width = 24 } }, encoder);
        var run = LlarkProcess.Run("ask", "--local", "--encoder", encoder, Clip, "Which key is this piece in?");
        Assert.Equal(3, run.ExitCode);
        Assert.Contains("131-wide", run.Stderr, StringComparison.Ordinal);  // the bundled demo's projector reads the spectral frames
        Assert.Contains("24-wide", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void PairsOfOtherWidthsAreRefused()
    {
        var e = Assert.Throws<LLark.Language.Engine.Model.ModelConfigException>(() => LocalLLark.CheckPair(4800, 25, 48, null, "m", "e"));
        Assert.Contains("4800", e.Message, StringComparison.Ordinal);
        Assert.Equal(10, LocalLLark.CheckPair(48, 10, 48, 10, "m", "e"));
    }

    [Fact]
    public void AskLocalReportsAClipThatIsNotAudio()
    {
        string bad = Path.Combine(dir, "bad.wav");
        File.WriteAllText(bad, "not audio at all");
        var run = LlarkProcess.Run("ask", "--local", bad, "Which key is this piece in?");
        Assert.Equal(4, run.ExitCode);
        Assert.Contains("cannot decode", run.Stderr, StringComparison.Ordinal);
    }
}
