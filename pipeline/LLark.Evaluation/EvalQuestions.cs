namespace LLark.Evaluation;

/// <summary>The tasks of the evaluation, each scored from its own label of the manifest.</summary>
public enum EvalTask
{
    Tempo,
    Key,
    Instrument,
    Genre,
}

/// <summary>
/// The held-out questions the evaluation asks: paraphrases kept out of the instruction data (the synthesis templates
/// must not use them; <see cref="All"/> is what a leak check compares against). The first of each task is the plain
/// question; the others vary the wording a model could have overfit to.
/// </summary>
public static class EvalQuestions
{
    public static IReadOnlyList<string> Tempo { get; } =
    [
        "What is the tempo of this song in BPM?",
        "How fast is this track, in beats per minute?",
        "Estimate the BPM of this recording.",
        "At roughly what tempo does this music move? Give a number of beats per minute.",
    ];

    public static IReadOnlyList<string> Key { get; } =
    [
        "Which key is this piece in?",
        "What is the tonal center and mode of this music?",
        "Name the key of this recording, including whether it is major or minor.",
        "If you had to write a key signature for this clip, what key would it be?",
    ];

    public static IReadOnlyList<string> Instrument { get; } =
    [
        "What instrument plays the melody here?",
        "Which instrument carries the main tune in this clip?",
        "Name the lead melodic instrument you hear.",
        "What is playing the most prominent melodic line?",
    ];

    public static IReadOnlyList<string> Genre { get; } =
    [
        "What genre would you call this?",
        "Which musical genre does this track belong to?",
        "How would you classify the style of this music by genre?",
        "If this song were in a record store, which genre section would it be filed under?",
    ];

    /// <summary>
    /// Open questions (none of them an instruction template), asked of every clip; the tempo, key, instrument and genre
    /// a description states are scored against the labels and against the same clip's answers to the direct questions.
    /// </summary>
    public static IReadOnlyList<string> Describe { get; } =
    [
        "Describe this music for me.",
        "What do you hear in this recording? Describe it.",
    ];

    /// <summary>The task name of <see cref="Describe"/>'s answers in <c>eval.jsonl</c>.</summary>
    public const string DescribeTask = "describe";

    public static IReadOnlyList<string> For(EvalTask task) => task switch
    {
        EvalTask.Tempo => Tempo,
        EvalTask.Key => Key,
        EvalTask.Instrument => Instrument,
        EvalTask.Genre => Genre,
        _ => throw new ArgumentOutOfRangeException(nameof(task), task, null),
    };

    public static IEnumerable<(EvalTask Task, string Question)> All =>
        Enum.GetValues<EvalTask>().SelectMany(t => For(t).Select(q => (t, q)));

    /// <summary>Every held-out question, the open ones included: what must stay out of the instruction templates.</summary>
    public static IEnumerable<string> AllQuestions => All.Select(x => x.Question).Concat(Describe);
}
