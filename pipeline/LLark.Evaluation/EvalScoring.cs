using System.Globalization;
using LLark.Data;

namespace LLark.Evaluation;

/// <summary>
/// Parses and scores the answers of an evaluation (parsing happens here, at scoring time, so that a resumed run's
/// answers are read by the current parsers). The model's score for a task is the mean over every (clip, question)
/// answer, an unreadable answer scoring 0; the baseline's is the mean over clips; chance comes from <see cref="Chance"/>.
/// </summary>
public static class EvalScoring
{
    public static EvalReport Score(string model, string manifest, IReadOnlyList<LabelledClip> clips, IReadOnlyList<EvalLine> lines,
        IReadOnlyList<JsonLineError> manifestErrors, List<SkippedClip> skipped, IReadOnlyList<string> genreLabels)
    {
        ArgumentNullException.ThrowIfNull(clips);
        ArgumentNullException.ThrowIfNull(lines);
        var genres = new GenreAnswerParser(genreLabels);
        var answersByClip = lines.Where(l => l.Type == "answer").GroupBy(l => l.Clip).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        var baselineByClip = lines.Where(l => l.Type == "baseline").GroupBy(l => l.Clip).ToDictionary(g => g.Key, g => g.Last(), StringComparer.Ordinal);
        var results = new List<ClipResult>();
        var perMetric = new Dictionary<(EvalTask, string), List<double>>();
        var baselineMetric = new Dictionary<(EvalTask, string), List<double>>();
        var parsedCount = new Dictionary<EvalTask, (int Parsed, int All)>();
        var byQuestion = new Dictionary<(EvalTask Task, string Question), List<double>>();
        var modelTempo = new List<(double, double)>();
        var baselineTempo = new List<(double, double)>();
        // Per task, per clip: (question index, parsed value or null) of each answer, for the consistency rows.
        var parsedByClip = new Dictionary<EvalTask, List<List<(int Question, object? Value)>>>();
        // Per task, per clip: the values the clip's descriptions state and its direct answers' values.
        var describedByClip = new Dictionary<EvalTask, List<(List<object?> Described, List<object?> Answered)>>();
        var describeMetric = new Dictionary<(EvalTask, string), List<double>>();
        var modelConfusion = new double[2, 12];
        var baselineConfusion = new double[2, 12];
        int unparsedKeys = 0;

        void Add(Dictionary<(EvalTask, string), List<double>> into, EvalTask task, string metric, double value)
        {
            if (!into.TryGetValue((task, metric), out List<double>? list)) into[(task, metric)] = list = [];
            list.Add(value);
        }

        foreach (LabelledClip clip in clips)
        {
            var scored = new List<ScoredAnswer>();
            var tasks = clip.Tasks.ToHashSet();
            var parsedHere = new Dictionary<EvalTask, List<(int, object?)>>();
            foreach (EvalLine line in answersByClip.GetValueOrDefault(clip.Id) ?? [])
            {
                if (!Enum.TryParse(line.Task, ignoreCase: true, out EvalTask task) || !tasks.Contains(task) || !EvalQuestions.For(task).Contains(line.Question ?? "")) continue;
                string text = line.Text ?? "";
                var scores = new Dictionary<string, double>(StringComparer.Ordinal);
                string? parsed = null, matched = null;
                object? value;
                bool ok;
                switch (task)
                {
                    case EvalTask.Tempo:
                    {
                        Parsed<double>? p = TempoAnswerParser.Parse(text);
                        ok = p is not null;
                        value = p?.Value;
                        parsed = p?.Value.ToString("0.###", CultureInfo.InvariantCulture);
                        matched = p?.Matched;
                        scores["acc1"] = Metrics.TempoAcc1(clip.Tempo!.Value, p?.Value) ? 1 : 0;
                        scores["acc2"] = Metrics.TempoAcc2(clip.Tempo!.Value, p?.Value) ? 1 : 0;
                        if (p is not null) modelTempo.Add((clip.Tempo!.Value, p.Value));
                        break;
                    }
                    case EvalTask.Key:
                    {
                        Parsed<MusicKey>? p = KeyAnswerParser.Parse(text);
                        ok = p is not null;
                        value = p?.Value;
                        parsed = p?.Value.ToString();
                        matched = p?.Matched;
                        scores["mirex_weighted"] = Metrics.KeyWeightedScore(clip.Key!.Value, p?.Value);
                        scores["exact"] = scores["mirex_weighted"] == 1 ? 1 : 0;
                        if (p is not null) Confuse(modelConfusion, clip.Key!.Value, p.Value);
                        else unparsedKeys++;
                        break;
                    }
                    case EvalTask.Instrument:
                    {
                        InstrumentMatcher.Mention? m = InstrumentMatcher.Find(text);
                        ok = m is not null;
                        value = m;
                        parsed = m?.Display;
                        matched = m?.Matched;
                        scores["accuracy"] = InstrumentMatcher.SameInstrument(clip.Instrument!, m) ? 1 : 0;
                        scores["family_accuracy"] = InstrumentMatcher.SameFamily(clip.Instrument!, m) ? 1 : 0;
                        break;
                    }
                    default:
                    {
                        Parsed<string>? p = genres.Parse(text);
                        ok = p is not null;
                        value = p is null ? null : GenreAnswerParser.Squash(p.Value);
                        parsed = p?.Value;
                        matched = p?.Matched;
                        scores["accuracy"] = p is not null && GenreAnswerParser.Squash(p.Value) == GenreAnswerParser.Squash(clip.Genre!) ? 1 : 0;
                        break;
                    }
                }
                foreach ((string metric, double score) in scores) Add(perMetric, task, metric, score);
                if (!parsedHere.TryGetValue(task, out List<(int, object?)>? here)) parsedHere[task] = here = [];
                here.Add((EvalQuestions.For(task).ToList().IndexOf(line.Question!), value));
                string primary = PrimaryMetric(task);
                if (!byQuestion.TryGetValue((task, line.Question!), out List<double>? forQuestion)) byQuestion[(task, line.Question!)] = forQuestion = [];
                forQuestion.Add(scores[primary]);
                (int parsedSoFar, int all) = parsedCount.GetValueOrDefault(task);
                parsedCount[task] = (parsedSoFar + (ok ? 1 : 0), all + 1);
                scored.Add(new ScoredAnswer
                {
                    Task = EvalRunner.TaskName(task), Question = line.Question!, Text = text, FinishReason = line.FinishReason, Parsed = parsed, Matched = matched,
                    Scores = scores,
                });
            }

            var describedHere = new Dictionary<EvalTask, List<object?>>();
            foreach (EvalLine line in (answersByClip.GetValueOrDefault(clip.Id) ?? [])
                .Where(l => l.Task == EvalQuestions.DescribeTask && EvalQuestions.Describe.Contains(l.Question ?? "")))
            {
                string text = line.Text ?? "";
                var stated = new List<string>();
                var scores = new Dictionary<string, double>(StringComparer.Ordinal);
                foreach (EvalTask task in clip.Tasks)
                {
                    object? value = ReadValue(task, text, genres);
                    double score = PrimaryScore(task, clip, value);
                    Add(describeMetric, task, "described", value is null ? 0 : 1);
                    Add(describeMetric, task, PrimaryMetric(task), score);
                    scores[$"{EvalRunner.TaskName(task)}_{PrimaryMetric(task)}"] = score;
                    if (value is not null) stated.Add($"{EvalRunner.TaskName(task)}: {Display(value)}");
                    if (!describedHere.TryGetValue(task, out List<object?>? values)) describedHere[task] = values = [];
                    values.Add(value);
                }
                scored.Add(new ScoredAnswer
                {
                    Task = EvalQuestions.DescribeTask, Question = line.Question!, Text = text, FinishReason = line.FinishReason,
                    Parsed = stated.Count > 0 ? string.Join("; ", stated) : null, Scores = scores,
                });
            }

            foreach ((EvalTask task, List<object?> values) in describedHere)
            {
                List<object?> answered = parsedHere.GetValueOrDefault(task)?.Select(x => x.Item2).ToList() ?? [];
                if (!describedByClip.TryGetValue(task, out var perClip)) describedByClip[task] = perClip = [];
                perClip.Add((values, answered));
            }
            foreach ((EvalTask task, List<(int, object?)> here) in parsedHere)
            {
                if (!parsedByClip.TryGetValue(task, out List<List<(int, object?)>>? perClip)) parsedByClip[task] = perClip = [];
                perClip.Add(here);
            }

            Dictionary<string, object?>? baseline = null;
            if (baselineByClip.TryGetValue(clip.Id, out EvalLine? b))
            {
                baseline = new Dictionary<string, object?> { ["tempo_bpm"] = b.TempoBpm, ["key"] = b.Key, ["key_correlation"] = b.KeyCorrelation };
                if (clip.Tempo is double tempo)
                {
                    bool acc1 = Metrics.TempoAcc1(tempo, b.TempoBpm), acc2 = Metrics.TempoAcc2(tempo, b.TempoBpm);
                    Add(baselineMetric, EvalTask.Tempo, "acc1", acc1 ? 1 : 0);
                    Add(baselineMetric, EvalTask.Tempo, "acc2", acc2 ? 1 : 0);
                    baseline["acc1"] = acc1 ? 1.0 : 0.0;
                    baseline["acc2"] = acc2 ? 1.0 : 0.0;
                    if (b.TempoBpm is double bpm) baselineTempo.Add((tempo, bpm));
                }
                if (clip.Key is MusicKey key)
                {
                    MusicKey? estimate = MusicKey.ParseLabel(b.Key);
                    double w = Metrics.KeyWeightedScore(key, estimate);
                    Add(baselineMetric, EvalTask.Key, "mirex_weighted", w);
                    Add(baselineMetric, EvalTask.Key, "exact", w == 1 ? 1 : 0);
                    baseline["mirex_weighted"] = w;
                    baseline["key_relation"] = Metrics.KeyRelation(key, estimate);
                    if (estimate is MusicKey e) Confuse(baselineConfusion, key, e);
                }
            }

            var reference = new Dictionary<string, string>(StringComparer.Ordinal);
            if (clip.Tempo is double t) reference["tempo_bpm"] = t.ToString("0.###", CultureInfo.InvariantCulture);
            if (clip.Key is MusicKey k) reference["key"] = k.ToString();
            if (clip.InstrumentLabel is not null) reference["instrument"] = clip.InstrumentLabel;
            if (clip.Genre is not null) reference["genre"] = clip.Genre;
            results.Add(new ClipResult { Clip = clip.Id, Audio = clip.AudioPath, Reference = reference, Answers = scored, Baseline = baseline });
        }

        var summary = new List<SummaryRow>();
        void Row(EvalTask task, string metric, ChanceLevel? chance, int n)
        {
            List<double>? m = perMetric.GetValueOrDefault((task, metric));
            List<double>? b = baselineMetric.GetValueOrDefault((task, metric));
            (int parsedN, int all) = parsedCount.GetValueOrDefault(task);
            summary.Add(new SummaryRow
            {
                Task = EvalRunner.TaskName(task), Metric = metric, Model = m is { Count: > 0 } ? m.Average() : null,
                Baseline = b is { Count: > 0 } ? b.Average() : null, Chance = chance?.Value, ChanceHow = chance?.How, Clips = n, Answers = all,
                ParsedRate = all > 0 ? parsedN / (double)all : null,
            });
        }

        List<double> tempos = [.. clips.Where(c => c.Tempo is not null).Select(c => c.Tempo!.Value)];
        if (tempos.Count > 0)
        {
            Row(EvalTask.Tempo, "acc1", Chance.BestConstantTempo(tempos, Metrics.TempoAcc1, [1]).Level, tempos.Count);
            Row(EvalTask.Tempo, "acc2", Chance.BestConstantTempo(tempos, Metrics.TempoAcc2, Metrics.Acc2Factors).Level, tempos.Count);
        }
        List<MusicKey> keys = [.. clips.Where(c => c.Key is not null).Select(c => c.Key!.Value)];
        if (keys.Count > 0)
        {
            ChanceLevel uniform = Chance.UniformKey(keys);
            Row(EvalTask.Key, "mirex_weighted", uniform, keys.Count);
            Row(EvalTask.Key, "exact", new ChanceLevel(1.0 / 24, "a uniformly random key (of 24) is exact 1 time in 24"), keys.Count);
        }
        List<InstrumentMatcher.Mention> instruments = [.. clips.Where(c => c.Instrument is not null).Select(c => c.Instrument!)];
        if (instruments.Count > 0)
        {
            Row(EvalTask.Instrument, "accuracy", Chance.Majority(instruments, m => m.Display, (r, g) => InstrumentMatcher.SameInstrument(r, g)), instruments.Count);
            Row(EvalTask.Instrument, "family_accuracy",
                Chance.Majority(instruments, m => string.Join('/', m.FamilyIds.Select(f => GeneralMidi.Families[f])), (r, g) => InstrumentMatcher.SameFamily(r, g)),
                instruments.Count);
        }
        List<string> genreRefs = [.. clips.Where(c => c.Genre is not null).Select(c => c.Genre!)];
        if (genreRefs.Count > 0)
            Row(EvalTask.Genre, "accuracy", Chance.Majority(genreRefs, GenreAnswerParser.Squash, (r, g) => GenreAnswerParser.Squash(r) == GenreAnswerParser.Squash(g)),
                genreRefs.Count);

        foreach (EvalTask task in Enum.GetValues<EvalTask>())
        {
            if (parsedByClip.GetValueOrDefault(task) is not { } perClip || Consistency(task, perClip) is not { } c) continue;
            summary.Add(new SummaryRow
            {
                Task = EvalRunner.TaskName(task), Metric = "consistency", Model = c.Within, Chance = c.Across,
                ChanceHow = c.Across is null ? null
                    : "the same two questions about two different clips (each clip paired with the next): how often answers that ignore the audio agree",
                Clips = c.Clips, Answers = c.Pairs,
            });
        }

        foreach (EvalTask task in Enum.GetValues<EvalTask>())
        {
            if (describeMetric.GetValueOrDefault((task, "described")) is not { Count: > 0 } described) continue;
            string name = EvalRunner.TaskName(task), primary = PrimaryMetric(task);
            SummaryRow? direct = summary.FirstOrDefault(r => r.Task == name && r.Metric == primary);
            int clipsDescribed = describedByClip.GetValueOrDefault(task)?.Count ?? 0;
            summary.Add(new SummaryRow { Task = name, Metric = "described", Model = described.Average(), Clips = clipsDescribed, Answers = described.Count });
            summary.Add(new SummaryRow
            {
                Task = name, Metric = $"description_{primary}", Model = describeMetric[(task, primary)].Average(), Chance = direct?.Chance,
                ChanceHow = direct?.ChanceHow, Clips = clipsDescribed, Answers = described.Count,
            });
            if (DescriptionConsistency(task, describedByClip[task]) is { } c)
            {
                summary.Add(new SummaryRow
                {
                    Task = name, Metric = "description_consistency", Model = c.Within, Chance = c.Across,
                    ChanceHow = c.Across is null ? null
                        : "a clip's description against the direct answers about the next clip: how often statements that ignore the audio agree",
                    Clips = c.Clips, Answers = c.Pairs,
                });
            }
        }

        return new EvalReport
        {
            Model = model, Manifest = Path.GetFullPath(manifest), Summary = summary, Clips = results, Skipped = skipped,
            ManifestErrors = [.. manifestErrors], ModelTempo = modelTempo, BaselineTempo = baselineTempo, ModelKeyConfusion = modelConfusion,
            BaselineKeyConfusion = baselineConfusion, UnparsedKeyAnswers = unparsedKeys,
            ByQuestion = [.. byQuestion.OrderBy(kv => kv.Key.Task).ThenBy(kv => EvalQuestions.For(kv.Key.Task).ToList().IndexOf(kv.Key.Question))
                .Select(kv => new QuestionScore(EvalRunner.TaskName(kv.Key.Task), kv.Key.Question, PrimaryMetric(kv.Key.Task), kv.Value.Average(), kv.Value.Count))],
        };
    }

    /// <summary>
    /// How often two answers about the same clip (separate questions on one embedding) state the same value: over every
    /// pair of a clip's answers, the fraction that agree (an unreadable answer agrees with nothing), beside the same
    /// fraction for the same question pairs asked about different clips. Null when no clip has two answers.
    /// </summary>
    internal static (double Within, double? Across, int Clips, int Pairs)? Consistency(EvalTask task, List<List<(int Question, object? Value)>> perClip)
    {
        ArgumentNullException.ThrowIfNull(perClip);
        int pairs = 0, agree = 0, acrossPairs = 0, acrossAgree = 0, clipsWithPairs = 0;
        for (int c = 0; c < perClip.Count; c++)
        {
            List<(int Question, object? Value)> here = perClip[c], next = perClip[(c + 1) % perClip.Count];
            if (here.Count < 2) continue;
            clipsWithPairs++;
            for (int i = 0; i < here.Count; i++)
            for (int j = i + 1; j < here.Count; j++)
            {
                pairs++;
                if (SameAnswer(task, here[i].Value, here[j].Value)) agree++;
                if (perClip.Count < 2) continue;
                // Question i of this clip against question j of the next clip, when the next clip was asked it.
                foreach ((int q, object? v) in next)
                {
                    if (q != here[j].Question) continue;
                    acrossPairs++;
                    if (SameAnswer(task, here[i].Value, v)) acrossAgree++;
                }
            }
        }
        if (pairs == 0) return null;
        return (agree / (double)pairs, acrossPairs > 0 ? acrossAgree / (double)acrossPairs : null, clipsWithPairs, pairs);
    }

    /// <summary>
    /// How often what a description states agrees with the direct answers about the same clip (every description and
    /// answer pair; a fact the description leaves out agrees with nothing), beside a description against the next
    /// clip's answers. Null when no clip has both.
    /// </summary>
    internal static (double Within, double? Across, int Clips, int Pairs)? DescriptionConsistency(EvalTask task,
        List<(List<object?> Described, List<object?> Answered)> perClip)
    {
        ArgumentNullException.ThrowIfNull(perClip);
        int pairs = 0, agree = 0, acrossPairs = 0, acrossAgree = 0, clips = 0;
        for (int c = 0; c < perClip.Count; c++)
        {
            (List<object?> described, List<object?> answered) = perClip[c];
            if (answered.Count == 0) continue;
            clips++;
            List<object?> next = perClip[(c + 1) % perClip.Count].Answered;
            foreach (object? d in described)
            {
                foreach (object? a in answered)
                {
                    pairs++;
                    if (SameAnswer(task, d, a)) agree++;
                }
                if (perClip.Count < 2) continue;
                foreach (object? a in next)
                {
                    acrossPairs++;
                    if (SameAnswer(task, d, a)) acrossAgree++;
                }
            }
        }
        if (pairs == 0) return null;
        return (agree / (double)pairs, acrossPairs > 0 ? acrossAgree / (double)acrossPairs : null, clips, pairs);
    }

    /// <summary>The value an answer states for a task (a tempo, a key, an instrument mention, a squashed genre); null if none.</summary>
    internal static object? ReadValue(EvalTask task, string text, GenreAnswerParser genres) => task switch
    {
        EvalTask.Tempo => TempoAnswerParser.Parse(text)?.Value,
        EvalTask.Key => KeyAnswerParser.Parse(text)?.Value,
        EvalTask.Instrument => InstrumentMatcher.Find(text),
        _ => genres.Parse(text) is { } g ? GenreAnswerParser.Squash(g.Value) : null,
    };

    /// <summary>A stated value's score on the task's primary metric (<see cref="PrimaryMetric"/>); nothing stated scores 0.</summary>
    internal static double PrimaryScore(EvalTask task, LabelledClip clip, object? value) => task switch
    {
        EvalTask.Tempo => Metrics.TempoAcc2(clip.Tempo!.Value, value as double?) ? 1 : 0,
        EvalTask.Key => Metrics.KeyWeightedScore(clip.Key!.Value, value as MusicKey?),
        EvalTask.Instrument => InstrumentMatcher.SameInstrument(clip.Instrument!, value as InstrumentMatcher.Mention) ? 1 : 0,
        _ => value is string g && g == GenreAnswerParser.Squash(clip.Genre!) ? 1 : 0,
    };

    private static string Display(object value) => value switch
    {
        double bpm => bpm.ToString("0.###", CultureInfo.InvariantCulture) + " BPM",
        InstrumentMatcher.Mention m => m.Display,
        _ => value.ToString() ?? "",
    };

    /// <summary>Two parsed answers state the same value: tempos within 4 % of the larger, the same key, a shared GM program, the same genre.</summary>
    internal static bool SameAnswer(EvalTask task, object? a, object? b) => (task, a, b) switch
    {
        (_, null, _) or (_, _, null) => false,
        (EvalTask.Tempo, double x, double y) => Math.Abs(x - y) <= 0.04 * Math.Max(x, y),
        (EvalTask.Key, MusicKey x, MusicKey y) => x == y,
        (EvalTask.Instrument, InstrumentMatcher.Mention x, InstrumentMatcher.Mention y) => InstrumentMatcher.SameInstrument(x, y),
        (EvalTask.Genre, string x, string y) => x == y,
        _ => false,
    };

    /// <summary>The paper's metric for a task: ACC2 for tempo, the MIREX weighted score for key, accuracy otherwise.</summary>
    public static string PrimaryMetric(EvalTask task) => task switch
    {
        EvalTask.Tempo => "acc2",
        EvalTask.Key => "mirex_weighted",
        _ => "accuracy",
    };

    private static void Confuse(double[,] counts, MusicKey reference, MusicKey estimate)
    {
        int up = ((estimate.Tonic - reference.Tonic) % 12 + 12) % 12;
        counts[estimate.Mode == reference.Mode ? 0 : 1, up]++;
    }
}
