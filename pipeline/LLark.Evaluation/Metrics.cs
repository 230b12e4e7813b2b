namespace LLark.Evaluation;

/// <summary>The scores of the paper's table, one reference and one estimate at a time.</summary>
public static class Metrics
{
    /// <summary>The tempo tolerance of ACC1 and ACC2: 4% of the (scaled) reference.</summary>
    public const double TempoTolerance = 0.04;

    /// <summary>The factors ACC2 allows: octave errors (x2, x1/2) and the metrical level of three (x3, x1/3).</summary>
    public static IReadOnlyList<double> Acc2Factors { get; } = [1.0 / 3, 0.5, 1, 2, 3];

    /// <summary>
    /// The MIREX weighted key score as <c>mir_eval.key.weighted_score</c> computes it: 1 for the same tonic and mode;
    /// 0.5 when the modes agree and the estimate's tonic is a perfect fifth (7 semitones) above the reference's (only
    /// above, unless <paramref name="allowDescendingFifths"/>, mir_eval's later option); 0.3 for the relative key (a
    /// major reference and a minor estimate 9 semitones up, or a minor reference and a major estimate 3 up); 0.2 for
    /// the parallel key (same tonic, other mode); else 0. An estimate that could not be read scores 0.
    /// </summary>
    public static double KeyWeightedScore(MusicKey reference, MusicKey? estimate, bool allowDescendingFifths = false)
    {
        if (estimate is not { } est) return 0;
        int up = ((est.Tonic - reference.Tonic) % 12 + 12) % 12;
        if (up == 0 && est.Mode == reference.Mode) return 1;
        if (est.Mode == reference.Mode && (up == 7 || (allowDescendingFifths && up == 5))) return 0.5;
        if (reference.Mode == KeyMode.Major && est.Mode == KeyMode.Minor && up == 9) return 0.3;
        if (reference.Mode == KeyMode.Minor && est.Mode == KeyMode.Major && up == 3) return 0.3;
        if (est.Mode != reference.Mode && up == 0) return 0.2;
        return 0;
    }

    /// <summary>Which MIREX category a pair falls in: "exact", "fifth", "relative", "parallel", "other", "unparsed".</summary>
    public static string KeyRelation(MusicKey reference, MusicKey? estimate) => KeyWeightedScore(reference, estimate) switch
    {
        1 => "exact",
        0.5 => "fifth",
        0.3 => "relative",
        0.2 => "parallel",
        _ => estimate is null ? "unparsed" : "other",
    };

    /// <summary>ACC1: the estimate is within 4% of the reference (inclusive; a 1e-9 relative slack absorbs rounding).</summary>
    public static bool TempoAcc1(double reference, double? estimate) => Within(reference, estimate, 1);

    /// <summary>ACC2: within 4% of the reference times 1/3, 1/2, 1, 2 or 3 (each tolerance 4% of its own scaled reference).</summary>
    public static bool TempoAcc2(double reference, double? estimate) => Acc2Factors.Any(f => Within(reference, estimate, f));

    private static bool Within(double reference, double? estimate, double factor)
    {
        if (estimate is not double e || !double.IsFinite(e) || !(reference > 0)) return false;
        double target = reference * factor;
        return Math.Abs(e - target) <= target * (TempoTolerance + 1e-9);
    }
}

/// <summary>A chance level and how it was computed.</summary>
public sealed record ChanceLevel(double Value, string How);

/// <summary>Chance levels computed from the references of the clips scored (never assumed).</summary>
public static class Chance
{
    /// <summary>The expected weighted score of a key drawn uniformly from the 24, averaged over the references.</summary>
    public static ChanceLevel UniformKey(IReadOnlyList<MusicKey> references)
    {
        ArgumentNullException.ThrowIfNull(references);
        if (references.Count == 0) return new ChanceLevel(double.NaN, "no references");
        double mean = references.Average(r => MusicKey.All.Average(k => Metrics.KeyWeightedScore(r, k)));
        return new ChanceLevel(mean, "expected score of a uniformly random key (of 24)");
    }

    /// <summary>
    /// The best constant tempo: the one BPM that, answered for every clip, scores highest under the metric. The
    /// metric's score only changes at the edges of the tolerance windows, so every window edge is tried. It is an
    /// oracle (chosen on the references it is scored on), so an upper bound on what a constant guess achieves.
    /// </summary>
    public static (ChanceLevel Level, double Bpm) BestConstantTempo(IReadOnlyList<double> references, Func<double, double?, bool> metric,
        IReadOnlyList<double> factors)
    {
        ArgumentNullException.ThrowIfNull(references);
        ArgumentNullException.ThrowIfNull(metric);
        ArgumentNullException.ThrowIfNull(factors);
        if (references.Count == 0) return (new ChanceLevel(double.NaN, "no references"), double.NaN);
        double bestBpm = double.NaN, best = -1;
        foreach (double r in references)
        {
            foreach (double f in factors)
            {
                foreach (double edge in new[] { 1 - Metrics.TempoTolerance, 1, 1 + Metrics.TempoTolerance })
                {
                    double bpm = r * f * edge;
                    double score = references.Count(x => metric(x, bpm)) / (double)references.Count;
                    if (score > best || (score == best && bpm < bestBpm))
                    {
                        best = score;
                        bestBpm = bpm;
                    }
                }
            }
        }
        return (new ChanceLevel(best, $"best constant tempo ({bestBpm:0.#} BPM for every clip; chosen on these references)"), bestBpm);
    }

    /// <summary>
    /// The majority class: the accuracy of answering the most common reference for every clip, scored with the same
    /// comparison the answers get.
    /// </summary>
    public static ChanceLevel Majority<T>(IReadOnlyList<T> references, Func<T, string> label, Func<T, T, bool> agree)
    {
        ArgumentNullException.ThrowIfNull(references);
        ArgumentNullException.ThrowIfNull(label);
        ArgumentNullException.ThrowIfNull(agree);
        if (references.Count == 0) return new ChanceLevel(double.NaN, "no references");
        T majority = references.GroupBy(label).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).First().First();
        double accuracy = references.Count(r => agree(r, majority)) / (double)references.Count;
        return new ChanceLevel(accuracy, $"majority class (always \"{label(majority)}\")");
    }
}
