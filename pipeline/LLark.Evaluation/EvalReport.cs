using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using LLark.Data;
using LLark.Data.Plots;

namespace LLark.Evaluation;

/// <summary>One row of the summary table: a task's metric for the model, the DSP baseline and chance.</summary>
public sealed record SummaryRow
{
    [JsonPropertyName("task")] public required string Task { get; init; }

    [JsonPropertyName("metric")] public required string Metric { get; init; }

    /// <summary>Mean over every (clip, question) answer; an answer that could not be parsed scores 0.</summary>
    [JsonPropertyName("model")] public double? Model { get; init; }

    /// <summary>Mean over clips; null where the baseline has no estimate for the task.</summary>
    [JsonPropertyName("baseline")] public double? Baseline { get; init; }

    [JsonPropertyName("chance")] public double? Chance { get; init; }

    [JsonPropertyName("chance_how")] public string? ChanceHow { get; init; }

    /// <summary>Clips scored.</summary>
    [JsonPropertyName("n")] public int Clips { get; init; }

    [JsonPropertyName("answers")] public int Answers { get; init; }

    /// <summary>Share of the answers the parser could read a value from.</summary>
    [JsonPropertyName("parsed")] public double? ParsedRate { get; init; }
}

/// <summary>The mean of a task's main metric over the answers to one question.</summary>
public sealed record QuestionScore(
    [property: JsonPropertyName("task")] string Task,
    [property: JsonPropertyName("question")] string Question,
    [property: JsonPropertyName("metric")] string Metric,
    [property: JsonPropertyName("model")] double Model,
    [property: JsonPropertyName("answers")] int Answers);

/// <summary>One answer, what was read from it and its scores.</summary>
public sealed record ScoredAnswer
{
    [JsonPropertyName("task")] public required string Task { get; init; }

    [JsonPropertyName("question")] public required string Question { get; init; }

    [JsonPropertyName("text")] public required string Text { get; init; }

    [JsonPropertyName("finish_reason")] public string? FinishReason { get; init; }

    /// <summary>The value read ("F# minor", 120, "Acoustic Guitar (steel)", "jazz"), null when none could be.</summary>
    [JsonPropertyName("parsed")] public string? Parsed { get; init; }

    /// <summary>The words it was read from.</summary>
    [JsonPropertyName("matched")] public string? Matched { get; init; }

    [JsonPropertyName("scores")] public required Dictionary<string, double> Scores { get; init; }
}

public sealed record ClipResult
{
    [JsonPropertyName("clip")] public required string Clip { get; init; }

    [JsonPropertyName("audio")] public required string Audio { get; init; }

    [JsonPropertyName("reference")] public required Dictionary<string, string> Reference { get; init; }

    [JsonPropertyName("answers")] public required List<ScoredAnswer> Answers { get; init; }

    [JsonPropertyName("baseline")] public Dictionary<string, object?>? Baseline { get; init; }
}

/// <summary>Everything <c>llark eval</c> found: per-clip answers and scores, the summary, what was skipped.</summary>
public sealed class EvalReport
{
    [JsonPropertyName("model")] public required string Model { get; init; }

    [JsonPropertyName("manifest")] public required string Manifest { get; init; }

    [JsonPropertyName("created_utc")] public DateTime Created { get; init; } = DateTime.UtcNow;

    [JsonPropertyName("summary")] public required List<SummaryRow> Summary { get; init; }

    /// <summary>The paper's metric for each paraphrase on its own: how much the wording moves the model.</summary>
    [JsonPropertyName("by_question")] public List<QuestionScore> ByQuestion { get; init; } = [];

    [JsonPropertyName("clips")] public required List<ClipResult> Clips { get; init; }

    [JsonPropertyName("skipped")] public required List<SkippedClip> Skipped { get; init; }

    [JsonPropertyName("manifest_errors")] public required List<JsonLineError> ManifestErrors { get; init; }

    [JsonPropertyName("questions")] public Dictionary<string, IReadOnlyList<string>> Questions { get; init; } =
        Enum.GetValues<EvalTask>().ToDictionary(EvalRunner.TaskName, EvalQuestions.For);

    /// <summary>Points for the tempo plot: (true, predicted) for the model's answers and the baseline's estimates.</summary>
    [JsonIgnore] public List<(double True, double Predicted)> ModelTempo { get; init; } = [];

    [JsonIgnore] public List<(double True, double Predicted)> BaselineTempo { get; init; } = [];

    /// <summary>[same mode, other mode] x [semitones up from the reference tonic]: counts of parsed key answers.</summary>
    [JsonIgnore] public double[,] ModelKeyConfusion { get; init; } = new double[2, 12];

    [JsonIgnore] public double[,] BaselineKeyConfusion { get; init; } = new double[2, 12];

    [JsonIgnore] public int UnparsedKeyAnswers { get; init; }

    public static readonly string[] IntervalNames = ["0", "m2", "M2", "m3", "M3", "P4", "TT", "P5", "m6", "M6", "m7", "M7"];

    /// <summary>The table: task, metric, model, DSP baseline, chance, n.</summary>
    public string Table()
    {
        string[] header = ["task", "metric", "model", "DSP baseline", "chance", "n", "answers", "parsed"];
        var rows = Summary.Select(r => new[]
        {
            r.Task, r.Metric, Number(r.Model), Number(r.Baseline), Number(r.Chance), r.Clips.ToString(CultureInfo.InvariantCulture),
            r.Answers.ToString(CultureInfo.InvariantCulture), Number(r.ParsedRate),
        }).ToList();
        int[] widths = [.. header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length)))];
        var text = new StringBuilder();
        text.AppendLine(string.Join("  ", header.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
        text.AppendLine(string.Join("  ", widths.Select(w => new string('-', w))));
        foreach (string[] r in rows) text.AppendLine(string.Join("  ", r.Select((c, i) => i >= 2 ? c.PadLeft(widths[i]) : c.PadRight(widths[i]))).TrimEnd());
        foreach (SummaryRow r in Summary.Where(r => r.ChanceHow is not null).DistinctBy(r => r.Task + r.ChanceHow))
            text.AppendLine(CultureInfo.InvariantCulture, $"chance, {r.Task} {r.Metric}: {r.ChanceHow}");
        return text.ToString();
    }

    private static string Number(double? v) => v is double d && double.IsFinite(d) ? d.ToString("0.000", CultureInfo.InvariantCulture) : "-";

    private static readonly JsonSerializerOptions JsonOptions = new(JsonLines.Options)
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Writes eval.json, tempo_scatter.png and key_confusion.png (plus the baseline's) into <paramref name="dir"/>.</summary>
    public void Write(string dir)
    {
        Directory.CreateDirectory(dir);
        string json = Path.Combine(dir, "eval.json");
        File.WriteAllText(json + ".tmp", JsonSerializer.Serialize(this, JsonOptions));
        File.Move(json + ".tmp", json, overwrite: true);

        var series = new List<Series>();
        if (ModelTempo.Count > 0) series.Add(new Series("model answers", [.. ModelTempo.Select(p => p.True)], [.. ModelTempo.Select(p => p.Predicted)]));
        if (BaselineTempo.Count > 0) series.Add(new Series("DSP baseline", [.. BaselineTempo.Select(p => p.True)], [.. BaselineTempo.Select(p => p.Predicted)]));
        Charts.Scatter(Path.Combine(dir, "tempo_scatter.png"), new ChartText("Tempo: predicted vs true", "true tempo (BPM)", "predicted tempo (BPM)"),
            series, diagonal: true);
        string[] rows = ["same mode", "other mode"];
        string[] columns = [.. IntervalNames.Select((n, i) => $"+{i} {n}")];
        Charts.Heatmap(Path.Combine(dir, "key_confusion.png"),
            new ChartText($"Key answers vs reference ({Model}; {UnparsedKeyAnswers} unparsed)", "estimated tonic, semitones above the reference", "mode")
            { Width = 1000, Height = 380 }, ModelKeyConfusion, rows, columns, "0");
        Charts.Heatmap(Path.Combine(dir, "key_confusion_baseline.png"),
            new ChartText("DSP baseline key vs reference", "estimated tonic, semitones above the reference", "mode") { Width = 1000, Height = 380 },
            BaselineKeyConfusion, rows, columns, "0");
    }
}
