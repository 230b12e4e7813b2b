namespace LLark.Checkpoints;

/// <summary>Lists of tensor names for error messages: a 7B model has hundreds, so messages show the first few and a count.</summary>
internal static class Names
{
    public const int Shown = 20;

    public static string Summarize(IReadOnlyCollection<string> names) =>
        names.Count <= Shown
            ? string.Join(", ", names)
            : string.Join(", ", names.Take(Shown)) + $", and {names.Count - Shown} more";
}
