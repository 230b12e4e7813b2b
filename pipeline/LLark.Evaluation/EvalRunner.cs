using LLark.Data;
using LLark.Encoder.Engine;
using LLark.Encoder.Engine.Audio;
using LLark.Evaluation.Dsp;

namespace LLark.Evaluation;

public sealed record EvalOptions
{
    public required string ManifestPath { get; init; }

    public required string OutDir { get; init; }

    /// <summary>Evaluate at most this many labelled clips (in manifest order); null for all.</summary>
    public int? Limit { get; init; }

    /// <summary>Questions per task (the first N paraphrases); null for all of them.</summary>
    public int? QuestionsPerTask { get; init; }

    public bool RunBaseline { get; init; } = true;
}

/// <summary>A clip left out, and why (a missing or undecodable file, an unreadable label).</summary>
public sealed record SkippedClip(string Clip, string Reason);

/// <summary>A clip of the manifest with the references it can be scored on.</summary>
public sealed record LabelledClip(ClipRecord Record, string AudioPath, double? Tempo, MusicKey? Key, InstrumentMatcher.Mention? Instrument,
    string? InstrumentLabel, string? Genre)
{
    public string Id => Record.ClipId;

    public IEnumerable<EvalTask> Tasks
    {
        get
        {
            if (Tempo is not null) yield return EvalTask.Tempo;
            if (Key is not null) yield return EvalTask.Key;
            if (Instrument is not null) yield return EvalTask.Instrument;
            if (Genre is not null) yield return EvalTask.Genre;
        }
    }
}

/// <summary>
/// <c>llark eval</c>'s work: for each labelled clip of a manifest, embed it once, ask every held-out question of each
/// task it has a label for and the open questions (<see cref="EvalQuestions.Describe"/>), append each answer to <c>eval.jsonl</c> as it comes (a rerun skips what is there), run the
/// DSP baseline, then score everything and write <c>eval.json</c> and the plots.
/// </summary>
public sealed class EvalRunner(IAnswerSource source, EvalOptions options, TextWriter log)
{
    public const string LinesFile = "eval.jsonl";

    public async Task<EvalReport> RunAsync(CancellationToken ct = default)
    {
        Manifest manifest = Manifest.Load(options.ManifestPath);
        foreach (JsonLineError e in manifest.Errors) await log.WriteLineAsync($"manifest line {e.Line} skipped: {e.Message}");
        var skipped = new List<SkippedClip>();
        List<LabelledClip> clips = Select(manifest, skipped);
        foreach (SkippedClip s in skipped) await log.WriteLineAsync($"clip {s.Clip}: {s.Reason}");
        if (options.Limit is int limit) clips = [.. clips.Take(limit)];

        Directory.CreateDirectory(options.OutDir);
        string linesPath = Path.Combine(options.OutDir, LinesFile);
        var resumeErrors = new List<JsonLineError>();
        List<EvalLine> lines = File.Exists(linesPath) ? JsonLines.Read<EvalLine>(linesPath, resumeErrors) : [];
        foreach (JsonLineError e in resumeErrors) await log.WriteLineAsync($"{LinesFile} line {e.Line} ignored: {e.Message}");
        var answered = lines.Where(l => l.Type == "answer" && l.Model == source.Name).Select(l => (l.Clip, l.Question!)).ToHashSet();
        var baselined = lines.Where(l => l.Type == "baseline").Select(l => l.Clip).ToHashSet(StringComparer.Ordinal);
        int reused = lines.Count(l => l.Type == "answer" && l.Model == source.Name && clips.Any(c => c.Id == l.Clip));
        if (reused > 0) await log.WriteLineAsync($"resuming: {reused} answers already in {linesPath}");

        var failed = new HashSet<string>(StringComparer.Ordinal);
        using (var appender = new JsonLinesAppender(linesPath))
        {
            int index = 0;
            foreach (LabelledClip clip in clips)
            {
                index++;
                ct.ThrowIfCancellationRequested();
                var todo = clip.Tasks.SelectMany(t => Questions(t).Select(q => (Task: EvalRunner.TaskName(t), Question: q)))
                    .Concat(Take(EvalQuestions.Describe).Select(q => (Task: EvalQuestions.DescribeTask, Question: q)))
                    .Where(x => !answered.Contains((clip.Id, x.Question))).ToList();
                if (todo.Count > 0)
                {
                    IEmbeddedClip embedded;
                    try
                    {
                        embedded = await source.EmbedAsync(clip.AudioPath, ct);
                    }
                    catch (Exception e) when (e is AudioDecodeException or FileNotFoundException or UnusableClipException or DirectoryNotFoundException)
                    {
                        skipped.Add(new SkippedClip(clip.Id, e.Message));
                        failed.Add(clip.Id);
                        await log.WriteLineAsync($"[{index}/{clips.Count}] {clip.Id}: skipped: {e.Message}");
                        continue;
                    }
                    foreach ((string task, string question) in todo)
                    {
                        ModelAnswer a = await embedded.AskAsync(question, ct);
                        var line = new EvalLine
                        {
                            Type = "answer", Clip = clip.Id, Model = source.Name, Task = task, Question = question, Text = a.Text,
                            FinishReason = a.FinishReason, PromptTokens = a.PromptTokens, GeneratedTokens = a.GeneratedTokens, Milliseconds = a.Milliseconds,
                        };
                        appender.Append(line);
                        lines.Add(line);
                    }
                    await log.WriteLineAsync($"[{index}/{clips.Count}] {clip.Id}: {todo.Count} answers ({embedded.Frames} frames)");
                }
                if (options.RunBaseline && !baselined.Contains(clip.Id) && !failed.Contains(clip.Id))
                {
                    DspBaselineResult b;
                    try
                    {
                        b = DspBaseline.RunFile(clip.AudioPath);
                    }
                    catch (Exception e) when (e is AudioDecodeException or FileNotFoundException)
                    {
                        skipped.Add(new SkippedClip(clip.Id, e.Message));
                        failed.Add(clip.Id);
                        await log.WriteLineAsync($"[{index}/{clips.Count}] {clip.Id}: skipped: {e.Message}");
                        continue;
                    }
                    var line = new EvalLine
                    {
                        Type = "baseline", Clip = clip.Id, TempoBpm = b.Tempo?.Bpm, Key = b.Key?.Key.ToString(), KeyCorrelation = b.Key?.Correlation,
                    };
                    appender.Append(line);
                    lines.Add(line);
                }
            }
        }

        List<LabelledClip> scored = [.. clips.Where(c => !failed.Contains(c.Id))];
        EvalReport report = EvalScoring.Score(source.Name, options.ManifestPath, scored, lines.Where(l => l.Type != "answer" || l.Model == source.Name).ToList(),
            manifest.Errors, skipped, GenreLabels(manifest));
        report.Write(options.OutDir);
        return report;
    }

    private IReadOnlyList<string> Questions(EvalTask task) => Take(EvalQuestions.For(task));

    private IReadOnlyList<string> Take(IReadOnlyList<string> all) => options.QuestionsPerTask is int n ? [.. all.Take(n)] : all;

    public static string TaskName(EvalTask task) => task.ToString().ToLowerInvariant();

    /// <summary>The clips with at least one usable label; a label that cannot be read is reported and that task left out.</summary>
    public static List<LabelledClip> Select(Manifest manifest, List<SkippedClip> problems)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(problems);
        var clips = new List<LabelledClip>();
        foreach (ClipRecord r in manifest.Clips)
        {
            MusicKey? key = MusicKey.ParseLabel(r.Key);
            if (r.Key is not null && key is null) problems.Add(new SkippedClip(r.ClipId, $"key label \"{r.Key}\" is not \"<tonic> major|minor\"; key not scored"));
            string? instrumentLabel = r.Instruments is { Count: > 0 } list ? list[0] : null;
            InstrumentMatcher.Mention? instrument = InstrumentMatcher.ResolveLabel(instrumentLabel);
            if (instrumentLabel is not null && instrument is null)
                problems.Add(new SkippedClip(r.ClipId, $"instrument \"{instrumentLabel}\" is no General MIDI name or known instrument; instrument not scored"));
            double? tempo = r.TempoBpm is > 0 and < 1000 ? r.TempoBpm : null;
            var clip = new LabelledClip(r, manifest.AudioPath(r), tempo, key, instrument, instrumentLabel, string.IsNullOrWhiteSpace(r.Genre) ? null : r.Genre);
            if (clip.Tasks.Any()) clips.Add(clip);
        }
        return clips;
    }

    /// <summary>Common genre names (GTZAN's ten and more) plus every genre the manifest uses.</summary>
    public static IReadOnlyList<string> GenreLabels(Manifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        string[] common =
        [
            "blues", "classical", "country", "disco", "hip hop", "jazz", "metal", "pop", "reggae", "rock", "electronic", "folk", "funk",
            "soul", "r&b", "latin", "ambient", "house", "techno", "punk", "gospel", "world", "rap", "indie", "soundtrack", "experimental",
        ];
        return [.. manifest.Clips.Select(c => c.Genre).OfType<string>().Where(g => g.Trim().Length > 0).Concat(common)];
    }
}
