using System.Globalization;
using System.Text.RegularExpressions;

namespace LLark.Evaluation;

/// <summary>What a parser found in an answer: the value and the span of text it came from.</summary>
public sealed record Parsed<T>(T Value, string Matched, int Index);

/// <summary>
/// Reads a key out of free text as "&lt;tonic&gt; major|minor". Tonics are a letter A-G with accidentals in any spelling
/// ("#", "♯", "b", "♭", "sharp", "flat", "-sharp", "-flat"; enharmonics fold to one pitch class, so "Gb" = "F#" and
/// "Cb" = "B"); modes are "major"/"minor"/"maj"/"min", the chord suffix "m" ("F#m") and "ionian"/"aeolian".
/// <list type="bullet">
/// <item>The first tonic with a mode attached wins ("A song in D minor" is D minor, not A).</item>
/// <item>Otherwise the first tonic without one: with an accidental anywhere ("Gb"), or a bare capital letter after
/// "key of", "key is", "in", "is", "tonic" or alone ("C."). Its mode is the first "major"/"minor" later in the same sentence,
/// else major (a chord symbol without "m").</item>
/// <item>Lowercase letters count only with an accidental or a mode, and the article "a" + mode only when no word
/// follows ("in a minor." is A minor, "a minor key" names no tonic); a bare "m" suffix needs a capital or an accidental
/// ("I am" is not A minor).</item>
/// </list>
/// </summary>
public static partial class KeyAnswerParser
{
    [GeneratedRegex(
        @"(?<![A-Za-z0-9#♯♭])(?<letter>[A-Ga-g])" +
        @"(?<acc>(?:\s?[#♯♭]|b(?![a-ln-zA-Z])|[\s-]?(?:[Ss]harp|[Ff]lat|SHARP|FLAT)(?![a-zA-Z]))*)" +
        @"(?:(?<suffix>m)(?![A-Za-z])" +
        @"|\s*-?\s*(?<mode>[Mm]ajor|[Mm]inor|MAJOR|MINOR|[Mm]aj|[Mm]in|[Ii]onian|[Aa]eolian)\.?(?![A-Za-z])" +
        @"|(?![A-Za-z]))",
        RegexOptions.CultureInvariant)]
    private static partial Regex Candidate();

    [GeneratedRegex(@"(?:\bkey(?:\s+(?:of|is|signature\s+(?:of|is)))?|\bin|\bis|\btonic(?:\s+(?:of|is))?|\bcentered\s+on|\bcentred\s+on)\s*[:=]?\s*$",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex KeyContextBefore();

    [GeneratedRegex(@"\b(?<mode>major|minor)\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex LaterMode();

    public static Parsed<MusicKey>? Parse(string? answer)
    {
        if (string.IsNullOrWhiteSpace(answer)) return null;
        Parsed<MusicKey>? weak = null;
        foreach (Match m in Candidate().Matches(answer))
        {
            char letter = m.Groups["letter"].Value[0];
            string acc = m.Groups["acc"].Value;
            bool hasAcc = acc.Trim().Length > 0;
            bool lower = char.IsLower(letter);
            string modeWord = m.Groups["mode"].Value;
            bool suffix = m.Groups["suffix"].Success;
            int tonic = MusicKey.PitchClass(letter, MusicKey.Accidental(acc));
            if (suffix && lower && !hasAcc) continue;
            if (suffix || modeWord.Length > 0)
            {
                if (lower && !hasAcc && letter == 'a' && WordFollows(answer, m.Index + m.Length)) continue;
                KeyMode mode = suffix ? KeyMode.Minor : ModeOf(modeWord);
                return new Parsed<MusicKey>(new MusicKey(tonic, mode), m.Value.Trim(), m.Index);
            }
            if (weak is not null) continue;
            bool accepted = hasAcc
                ? !(lower && acc.Trim() == "b") // "eb", "ab" in lowercase prose are too often not notes
                : !lower && (answer[..m.Index].Trim().Length == 0 || KeyContextBefore().IsMatch(answer[..m.Index]))
                  && !(letter == 'A' && LowercaseWordFollows(answer, m.Index + m.Length));
            if (accepted)
            {
                int end = m.Index + m.Length;
                int sentenceEnd = answer.IndexOfAny(['.', '!', '?', '\n', ';'], end);
                string rest = sentenceEnd < 0 ? answer[end..] : answer[end..sentenceEnd];
                Match later = LaterMode().Match(rest);
                KeyMode mode = later.Success ? ModeOf(later.Groups["mode"].Value) : KeyMode.Major;
                weak = new Parsed<MusicKey>(new MusicKey(tonic, mode), m.Value.Trim(), m.Index);
            }
        }
        return weak;
    }

    private static KeyMode ModeOf(string word) =>
        word.StartsWith("maj", StringComparison.OrdinalIgnoreCase) || word.Equals("ionian", StringComparison.OrdinalIgnoreCase)
            ? KeyMode.Major : KeyMode.Minor;

    private static bool WordFollows(string text, int at)
    {
        int i = at;
        while (i < text.Length && text[i] == ' ') i++;
        return i > at && i < text.Length && char.IsLetter(text[i]);
    }

    private static bool LowercaseWordFollows(string text, int at)
    {
        int i = at;
        while (i < text.Length && text[i] == ' ') i++;
        return i > at && i < text.Length && char.IsLower(text[i]);
    }
}

/// <summary>
/// Tempo as the paper reads it: the first number in the answer ("120", "92.5", "about 120-125 BPM" is 120). Digits glued
/// to letters count too ("120bpm"). Spelled-out numbers are not read.
/// </summary>
public static partial class TempoAnswerParser
{
    [GeneratedRegex(@"\d+(?:\.\d+)?", RegexOptions.CultureInvariant)]
    private static partial Regex Number();

    public static Parsed<double>? Parse(string? answer)
    {
        if (string.IsNullOrWhiteSpace(answer)) return null;
        Match m = Number().Match(answer);
        if (!m.Success) return null;
        double value = double.Parse(m.Value, NumberStyles.Float, CultureInfo.InvariantCulture);
        return double.IsFinite(value) ? new Parsed<double>(value, m.Value, m.Index) : null;
    }
}

/// <summary>
/// Genre by label match: the earliest run of one to four words in the answer that equals one of the labels, compared
/// without case, spaces, hyphens or punctuation ("Hip-Hop" = "hip hop" = "hiphop"; "&amp;" reads as "and", so "R&amp;B"
/// = "r and b"). At one position the longest label wins. Only whole words match ("pop" is not found in "popular").
/// </summary>
public sealed class GenreAnswerParser
{
    private readonly Dictionary<string, string> bySquashed = new(StringComparer.Ordinal);
    private readonly int longest;

    public GenreAnswerParser(IEnumerable<string> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        foreach (string label in labels)
        {
            string squashed = Squash(label);
            if (squashed.Length == 0) continue;
            bySquashed.TryAdd(squashed, label);
            longest = Math.Max(longest, Words(label).Count);
        }
    }

    /// <summary>The labels it knows, as first given.</summary>
    public IReadOnlyCollection<string> Labels => bySquashed.Values;

    /// <summary>The canonical form labels are compared in.</summary>
    public static string Squash(string text) => string.Concat(Words(text));

    public Parsed<string>? Parse(string? answer)
    {
        if (string.IsNullOrWhiteSpace(answer)) return null;
        List<(string Word, int Index)> words = WordSpans(answer);
        for (int i = 0; i < words.Count; i++)
        {
            for (int n = Math.Min(Math.Max(longest, 1), words.Count - i); n >= 1; n--)
            {
                string joined = string.Concat(words.Skip(i).Take(n).Select(w => w.Word));
                if (bySquashed.TryGetValue(joined, out string? label))
                {
                    int start = words[i].Index;
                    int end = words[i + n - 1].Index + words[i + n - 1].Word.Length;
                    return new Parsed<string>(label, answer[start..Math.Min(end, answer.Length)], start);
                }
            }
        }
        return null;
    }

    private static List<string> Words(string text) => [.. WordSpans(text).Select(w => w.Word)];

    /// <summary>Lowercase runs of letters and digits; "&amp;" is the word "and".</summary>
    internal static List<(string Word, int Index)> WordSpans(string text)
    {
        var words = new List<(string, int)>();
        int i = 0;
        while (i < text.Length)
        {
            if (text[i] == '&')
            {
                words.Add(("and", i));
                i++;
                continue;
            }
            if (!char.IsLetterOrDigit(text[i]))
            {
                i++;
                continue;
            }
            int start = i;
            while (i < text.Length && char.IsLetterOrDigit(text[i])) i++;
            words.Add((text[start..i].ToLowerInvariant(), start));
        }
        return words;
    }
}
