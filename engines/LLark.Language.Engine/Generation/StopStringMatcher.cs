namespace LLark.Language.Engine.Generation;

/// <summary>
/// Streams text while watching for stop strings. Text that could still turn into a stop string is held back,
/// so a client never receives part of a stop marker (LLark's "###") that generation then ends on.
/// </summary>
public sealed class StopStringMatcher
{
    private readonly IReadOnlyList<string> stops;
    private readonly System.Text.StringBuilder pending = new();

    public StopStringMatcher(IReadOnlyList<string> stops) => this.stops = stops;

    public bool Stopped { get; private set; }

    /// <summary>Adds text; returns what can be released now. After a stop, returns the text before it and sets <see cref="Stopped"/>.</summary>
    public string Push(string delta)
    {
        if (Stopped) return "";
        pending.Append(delta);
        if (stops.Count == 0) return Drain(pending.Length);
        string text = pending.ToString();
        int first = -1;
        foreach (string stop in stops)
        {
            int at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first)) first = at;
        }
        if (first >= 0)
        {
            Stopped = true;
            string before = text[..first];
            pending.Clear();
            return before;
        }
        return Drain(text.Length - LongestStopPrefixSuffix(text));
    }

    /// <summary>Releases whatever is held back (generation ended for another reason).</summary>
    public string Flush() => Stopped ? "" : Drain(pending.Length);

    private string Drain(int count)
    {
        string released = pending.ToString(0, count);
        pending.Remove(0, count);
        return released;
    }

    /// <summary>Length of the longest suffix of text that is a proper prefix of some stop string.</summary>
    private int LongestStopPrefixSuffix(string text)
    {
        int best = 0;
        foreach (string stop in stops)
        {
            for (int len = Math.Min(stop.Length - 1, text.Length); len > best; len--)
            {
                if (string.CompareOrdinal(text, text.Length - len, stop, 0, len) == 0) { best = len; break; }
            }
        }
        return best;
    }
}
