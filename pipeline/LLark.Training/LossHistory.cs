using System.Text.Json.Serialization;
using LLark.Data;

namespace LLark.Training;

/// <summary>
/// One line of <c>DIR/loss.jsonl</c>: a training step (<see cref="Loss"/>, <see cref="Lr"/>, ...) or a validation
/// (<see cref="ValidationLoss"/>) at <see cref="Step"/>.
/// </summary>
public sealed record LossRecord
{
    [JsonPropertyName("step")] public int Step { get; init; }

    /// <summary>Mean answer-token cross-entropy of the step's micro-batches (each averaged over its own tokens).</summary>
    [JsonPropertyName("loss")] public double? Loss { get; init; }

    [JsonPropertyName("lr")] public double? Lr { get; init; }

    /// <summary>Global gradient norm before clipping.</summary>
    [JsonPropertyName("grad_norm")] public double? GradNorm { get; init; }

    /// <summary>Tokens (padding excluded) in the step's micro-batches.</summary>
    [JsonPropertyName("tokens")] public long? Tokens { get; init; }

    /// <summary>Mean answer-token cross-entropy over the validation examples.</summary>
    [JsonPropertyName("val_loss")] public double? ValidationLoss { get; init; }

    [JsonPropertyName("elapsed_s")] public double ElapsedSeconds { get; init; }
}

/// <summary>The curves a plot of a run draws: training loss by step and validation loss by step.</summary>
public sealed record LossCurves(IReadOnlyList<(int Step, double Loss)> Train, IReadOnlyList<(int Step, double Loss)> Validation);

/// <summary>Reads and trims <c>loss.jsonl</c>.</summary>
public static class LossHistory
{
    public const string FileName = "loss.jsonl";

    /// <summary>The series to plot from a run folder's loss.jsonl (the feed for a PNG of the run).</summary>
    public static LossCurves ReadCurves(string path)
    {
        List<LossRecord> records = JsonLines.Read<LossRecord>(path, []);
        return new LossCurves(
            [.. records.Where(r => r.Loss is not null).Select(r => (r.Step, r.Loss!.Value))],
            [.. records.Where(r => r.ValidationLoss is not null).Select(r => (r.Step, r.ValidationLoss!.Value))]);
    }

    public const string PlotFileName = "loss.png";

    /// <summary>The run's loss curve: training loss by step and validation loss by step, log scale, as a PNG.</summary>
    public static void Plot(string lossPath, string pngPath)
    {
        LossCurves curves = ReadCurves(lossPath);
        var series = new List<LLark.Data.Plots.Series>();
        if (curves.Train.Count > 0)
            series.Add(new("training", [.. curves.Train.Select(p => (double)p.Step)], [.. curves.Train.Select(p => p.Loss)]));
        if (curves.Validation.Count > 0)
            series.Add(new("validation", [.. curves.Validation.Select(p => (double)p.Step)], [.. curves.Validation.Select(p => p.Loss)]));
        if (series.Count == 0) return;
        LLark.Data.Plots.Charts.Line(pngPath, new LLark.Data.Plots.ChartText("Answer-token cross-entropy", "step", "loss (log scale)"), series, logY: true);
    }

    /// <summary>Drops records after <paramref name="step"/>: a resumed run rewrites the steps lost since its last save.</summary>
    public static void TruncateAfter(string path, int step)
    {
        if (!File.Exists(path)) return;
        List<LossRecord> records = JsonLines.Read<LossRecord>(path, []);
        JsonLines.Write(path, records.Where(r => r.Step <= step));
    }
}
