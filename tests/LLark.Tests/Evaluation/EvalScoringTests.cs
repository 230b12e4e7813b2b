using LLark.Data;
using LLark.Evaluation;

namespace LLark.Tests.Evaluation;

/// <summary>Scoring from recorded answers and baseline lines, no model: every number here is worked out by hand.</summary>
public sealed class EvalScoringTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("llark-scoring-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static EvalLine Answer(string clip, EvalTask task, int question, string text) => new()
    {
        Type = "answer", Clip = clip, Model = "m", Task = EvalRunner.TaskName(task), Question = EvalQuestions.For(task)[question], Text = text,
        FinishReason = "stop",
    };

    [Fact]
    public void ADescriptionsStatementsAreScoredAndComparedWithTheDirectAnswers()
    {
        string manifestPath = Path.Combine(dir, "manifest.jsonl");
        File.WriteAllLines(manifestPath,
        [
            """{"id":"x","audio":"x.wav","tempo_bpm":120,"key":"F major","instruments":["Flute"]}""",
            """{"id":"y","audio":"y.wav","tempo_bpm":90,"key":"C major","instruments":["Violin"]}""",
        ]);
        Manifest manifest = Manifest.Load(manifestPath);
        var problems = new List<SkippedClip>();
        List<LabelledClip> clips = EvalRunner.Select(manifest, problems);
        EvalLine Describe(string clip, string text) => new()
        {
            Type = "answer", Clip = clip, Model = "m", Task = EvalQuestions.DescribeTask, Question = EvalQuestions.Describe[0], Text = text, FinishReason = "stop",
        };
        List<EvalLine> lines =
        [
            Describe("x", "A folk tune with a flute in the lead. The key is F major, at about 121 BPM."),
            Describe("y", "A gentle piece led by a cello, in G major."),
            Answer("x", EvalTask.Instrument, 0, "a flute"), Answer("x", EvalTask.Key, 0, "F major"), Answer("x", EvalTask.Tempo, 0, "120 BPM"),
            Answer("y", EvalTask.Instrument, 0, "a violin"), Answer("y", EvalTask.Key, 0, "G major"), Answer("y", EvalTask.Tempo, 0, "90 BPM"),
        ];
        EvalReport report = EvalScoring.Score("m", manifestPath, clips, lines, manifest.Errors, problems, EvalRunner.GenreLabels(manifest));
        double? Value(string task, string metric) => report.Summary.Single(r => r.Task == task && r.Metric == metric).Model;
        double? Reference(string task, string metric) => report.Summary.Single(r => r.Task == task && r.Metric == metric).Chance;

        Assert.Equal(1.0, Value("instrument", "described"));
        Assert.Equal(0.5, Value("instrument", "description_accuracy"));    // flute right, cello wrong
        Assert.Equal(0.5, Value("instrument", "description_consistency")); // flute = flute, cello != violin
        Assert.Equal(0.0, Reference("instrument", "description_consistency"));
        Assert.Equal(1.0, Value("key", "described"));
        Assert.Equal(0.75, Value("key", "description_mirex_weighted"));   // F major exact, G major a fifth above C major
        Assert.Equal(1.0, Value("key", "description_consistency"));
        Assert.Equal(0.0, Reference("key", "description_consistency"));
        Assert.Equal(0.5, Value("tempo", "described"));                   // y's description gives no tempo
        Assert.Equal(0.5, Value("tempo", "description_acc2"));
        Assert.Equal(0.5, Value("tempo", "description_consistency"));     // 121 = 120 within 4 %; nothing against 90
        // The direct metrics are the direct answers' alone.
        Assert.Equal(1.0, Value("tempo", "acc2"));
        Assert.Equal(1.0, Value("instrument", "accuracy"));  // flute and violin, both right
        ClipResult x = report.Clips.Single(c => c.Clip == "x");
        Assert.Equal("tempo: 121 BPM; key: F major; instrument: flute", x.Answers.Single(a => a.Task == EvalQuestions.DescribeTask).Parsed);
    }

    [Fact]
    public void TheOpenQuestionsAreNoInstructionTemplate()
    {
        static string Norm(string q) => string.Join(' ', q.ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries));
        var templates = LLark.Data.Instruct.Templates.Questions.Values.SelectMany(q => q).Select(Norm).ToHashSet();
        Assert.All(EvalQuestions.AllQuestions, q => Assert.DoesNotContain(Norm(q), templates));
    }

    [Fact]
    public void ConsistencyIsTheAgreementOfAClipsAnswersBesideThatOfDifferentClips()
    {
        string manifestPath = Path.Combine(dir, "manifest.jsonl");
        File.WriteAllLines(manifestPath,
        [
            """{"id":"x","audio":"x.wav","tempo_bpm":120,"instruments":["Flute"]}""",
            """{"id":"y","audio":"y.wav","tempo_bpm":90,"instruments":["Violin"]}""",
            """{"id":"z","audio":"z.wav","tempo_bpm":60,"instruments":["Flute"]}""",
        ]);
        Manifest manifest = Manifest.Load(manifestPath);
        var problems = new List<SkippedClip>();
        List<LabelledClip> clips = EvalRunner.Select(manifest, problems);
        List<EvalLine> lines =
        [
            Answer("x", EvalTask.Instrument, 0, "a flute"), Answer("x", EvalTask.Instrument, 1, "The flute carries it."),  // agree
            Answer("y", EvalTask.Instrument, 0, "a violin"), Answer("y", EvalTask.Instrument, 1, "a cello"),              // differ
            Answer("z", EvalTask.Instrument, 0, "flute"), Answer("z", EvalTask.Instrument, 1, "A flute."),                // agree
            Answer("x", EvalTask.Tempo, 0, "120 BPM"), Answer("x", EvalTask.Tempo, 1, "about 124 BPM"),  // 4 of 124 is 3.2 %: agree
            Answer("y", EvalTask.Tempo, 0, "90 BPM"), Answer("y", EvalTask.Tempo, 1, "fast"),            // unreadable: agrees with nothing
            Answer("z", EvalTask.Tempo, 0, "60 BPM"), Answer("z", EvalTask.Tempo, 1, "63 BPM"),          // 3 of 63 is 4.8 %: differ
        ];
        EvalReport report = EvalScoring.Score("m", manifestPath, clips, lines, manifest.Errors, problems, EvalRunner.GenreLabels(manifest));
        SummaryRow Row(string task) => report.Summary.Single(r => r.Task == task && r.Metric == "consistency");

        Assert.Equal(2 / 3.0, Row("instrument").Model!.Value, 12);
        // Question 0 of each clip against question 1 of the next: flute/cello, violin/flute, flute/flute.
        Assert.Equal(1 / 3.0, Row("instrument").Chance!.Value, 12);
        Assert.Equal(3, Row("instrument").Clips);
        Assert.Equal(3, Row("instrument").Answers);
        Assert.Equal(1 / 3.0, Row("tempo").Model!.Value, 12);
        Assert.Equal(0.0, Row("tempo").Chance);  // 120/fast, 90/63, 60/124
        Assert.DoesNotContain(report.Summary, r => r.Metric == "consistency" && r.Task is "key" or "genre");
    }

    [Fact]
    public void AnswersAreParsedAndScoredBesideBaselineAndChance()
    {
        string manifestPath = Path.Combine(dir, "manifest.jsonl");
        File.WriteAllLines(manifestPath,
        [
            """{"id":"a","audio":"a.wav","tempo_bpm":120,"key":"F# minor","instruments":["Acoustic Guitar (steel)","Drums"],"genre":"rock"}""",
            """{"id":"b","audio":"b.wav","tempo_bpm":90,"key":"C major","instruments":["Violin"],"genre":"rock"}""",
            """{"id":"c","audio":"c.wav","key":"Q lydian","instruments":["Theremin"]}""",
        ]);
        Manifest manifest = Manifest.Load(manifestPath);
        var problems = new List<SkippedClip>();
        List<LabelledClip> clips = EvalRunner.Select(manifest, problems);
        Assert.Equal(["a", "b"], clips.Select(c => c.Id));
        Assert.Equal(2, problems.Count(p => p.Clip == "c"));

        List<EvalLine> lines =
        [
            Answer("a", EvalTask.Tempo, 0, "About 240 BPM."),          // octave error: acc1 0, acc2 1
            Answer("a", EvalTask.Tempo, 1, "It is 121 beats per minute"), // acc1 1, acc2 1
            Answer("a", EvalTask.Key, 0, "F sharp minor"),              // 1
            Answer("a", EvalTask.Key, 1, "I think A major"),            // relative: 0.3
            Answer("a", EvalTask.Instrument, 0, "an acoustic guitar"),  // 1
            Answer("a", EvalTask.Genre, 0, "It's jazz"),                // 0
            Answer("b", EvalTask.Tempo, 0, "fast"),                     // unparsed: 0, 0
            Answer("b", EvalTask.Key, 0, "G major"),                    // fifth: 0.5
            Answer("b", EvalTask.Instrument, 0, "a cello"),             // 0, family 1
            Answer("b", EvalTask.Genre, 0, "rock music"),               // 1
            Answer("b", EvalTask.Genre, 0, "this question was asked of another clip task") with { Task = "tempo" }, // not a tempo question: ignored
            new() { Type = "baseline", Clip = "a", TempoBpm = 60.5, Key = "A major", KeyCorrelation = 0.8 },  // acc1 0, acc2 1; key 0.3
            new() { Type = "baseline", Clip = "b", TempoBpm = 91, Key = "C major", KeyCorrelation = 0.9 },    // acc1 1; key 1
        ];
        EvalReport report = EvalScoring.Score("m", manifestPath, clips, lines, manifest.Errors, problems, EvalRunner.GenreLabels(manifest));
        SummaryRow Row(string task, string metric) => report.Summary.Single(r => r.Task == task && r.Metric == metric);

        Assert.Equal(1 / 3.0, Row("tempo", "acc1").Model!.Value, 12);
        Assert.Equal(2 / 3.0, Row("tempo", "acc2").Model!.Value, 12);
        Assert.Equal(0.5, Row("tempo", "acc1").Baseline);
        Assert.Equal(1.0, Row("tempo", "acc2").Baseline);
        Assert.Equal(2 / 3.0, Row("tempo", "acc1").ParsedRate!.Value, 12);
        Assert.Equal(2, Row("tempo", "acc1").Clips);
        Assert.Equal(3, Row("tempo", "acc1").Answers);
        Assert.Equal(0.5, Row("tempo", "acc1").Chance);  // no constant is within 4% of both 120 and 90
        Assert.Equal(0.5, Row("tempo", "acc2").Chance);  // 120 x {1/3 .. 3} and 90 x {1/3 .. 3} never come within 4% of each other
        Assert.Equal((1 + 0.3 + 0.5) / 3, Row("key", "mirex_weighted").Model!.Value, 12);
        Assert.Equal(1 / 3.0, Row("key", "exact").Model!.Value, 12);
        Assert.Equal((0.3 + 1) / 2, Row("key", "mirex_weighted").Baseline!.Value, 12);
        Assert.Equal(2.0 / 24, Row("key", "mirex_weighted").Chance!.Value, 12);
        Assert.Equal(0.5, Row("instrument", "accuracy").Model);
        Assert.Equal(1.0, Row("instrument", "family_accuracy").Model);
        Assert.Null(Row("instrument", "accuracy").Baseline);
        Assert.Equal(0.5, Row("instrument", "accuracy").Chance);
        Assert.Equal(0.5, Row("genre", "accuracy").Model);
        Assert.Equal(1.0, Row("genre", "accuracy").Chance);  // both clips are rock

        ClipResult a = report.Clips.Single(c => c.Clip == "a");
        Assert.Equal("F# minor", a.Answers.Single(x => x.Text == "F sharp minor").Parsed);
        Assert.Equal("F sharp minor", a.Answers.Single(x => x.Text == "F sharp minor").Matched);
        Assert.Equal("relative", a.Baseline!["key_relation"]);
        Assert.Equal(1.0, report.ModelKeyConfusion[0, 0]);  // F# minor for F# minor: same mode, +0
        Assert.Equal(1.0, report.ModelKeyConfusion[1, 3]);  // A major for F# minor: other mode, +3
        Assert.Equal(1.0, report.ModelKeyConfusion[0, 7]);  // G major for C major: same mode, +7
        Assert.Equal(2, report.ModelTempo.Count);

        QuestionScore plainTempo = report.ByQuestion.Single(q => q.Question == EvalQuestions.Tempo[0]);
        Assert.Equal(("acc2", 0.5, 2), (plainTempo.Metric, plainTempo.Model, plainTempo.Answers));  // 240 for 120 (x2) scores, "fast" does not
        Assert.Equal(1.0, report.ByQuestion.Single(q => q.Question == EvalQuestions.Tempo[1]).Model);
        QuestionScore plainKey = report.ByQuestion.Single(q => q.Question == EvalQuestions.Key[0]);
        Assert.Equal(("mirex_weighted", 0.75, 2), (plainKey.Metric, plainKey.Model, plainKey.Answers));
        string table = report.Table();
        Assert.Contains("task", table, StringComparison.Ordinal);
        Assert.Contains("DSP baseline", table, StringComparison.Ordinal);
        Assert.Contains("mirex_weighted", table, StringComparison.Ordinal);
        Assert.Contains("0.600", table, StringComparison.Ordinal);
    }
}
