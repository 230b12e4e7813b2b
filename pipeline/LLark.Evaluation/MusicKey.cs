using System.Text.RegularExpressions;

namespace LLark.Evaluation;

public enum KeyMode
{
    Major,
    Minor,
}

/// <summary>A key: tonic pitch class (0 = C .. 11 = B, enharmonics the same) and mode.</summary>
public readonly record struct MusicKey(int Tonic, KeyMode Mode)
{
    private static readonly string[] Names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];

    /// <summary>The 24 keys, majors first (C major .. B major, C minor .. B minor): the order of <see cref="Index"/>.</summary>
    public static IReadOnlyList<MusicKey> All { get; } =
        [.. Enumerable.Range(0, 24).Select(i => new MusicKey(i % 12, i < 12 ? KeyMode.Major : KeyMode.Minor))];

    public static IReadOnlyList<string> TonicNames => Names;

    /// <summary>0..23: the tonic for majors, 12 + tonic for minors.</summary>
    public int Index => Tonic + (Mode == KeyMode.Minor ? 12 : 0);

    /// <summary>The manifest's spelling: "F# minor", "Bb major".</summary>
    public override string ToString() => $"{Names[Tonic]} {(Mode == KeyMode.Major ? "major" : "minor")}";

    /// <summary>Pitch class of a note letter with its accidentals (each # or "sharp" +1, each b or "flat" -1).</summary>
    internal static int PitchClass(char letter, int accidental)
    {
        int natural = char.ToUpperInvariant(letter) switch
        {
            'C' => 0,
            'D' => 2,
            'E' => 4,
            'F' => 5,
            'G' => 7,
            'A' => 9,
            'B' => 11,
            _ => throw new ArgumentOutOfRangeException(nameof(letter), letter, "not a note letter"),
        };
        return ((natural + accidental) % 12 + 12) % 12;
    }

    private static readonly Regex LabelPattern = new(
        @"^\s*(?<letter>[A-Ga-g])\s*(?<acc>(?:#|♯|b|♭|-?\s*sharp|-?\s*flat)*)\s*(?<mode>major|minor|maj|min|m)?\s*$",
        RegexOptions.CultureInvariant | RegexOptions.IgnoreCase);

    /// <summary>
    /// Reads a dataset's key label: "F# minor", "Bb major", "Ebm", "A" (no mode: major), as GiantSteps and the
    /// manifest spell them. Returns null for anything else (including "X" / unknown).
    /// </summary>
    public static MusicKey? ParseLabel(string? label)
    {
        if (string.IsNullOrWhiteSpace(label)) return null;
        Match m = LabelPattern.Match(label);
        if (!m.Success) return null;
        string mode = m.Groups["mode"].Value;
        // A bare "m" is minor only as a suffix ("Am"); "M" would be major in chord symbols but is not used in labels.
        KeyMode keyMode = mode.Length == 0 || mode.StartsWith("maj", StringComparison.OrdinalIgnoreCase) ? KeyMode.Major : KeyMode.Minor;
        return new MusicKey(PitchClass(m.Groups["letter"].Value[0], Accidental(m.Groups["acc"].Value)), keyMode);
    }

    /// <summary>+1 per sharp, -1 per flat, in any spelling ("#", "♯", "sharp"; "b", "♭", "flat").</summary>
    internal static int Accidental(string text)
    {
        int total = 0;
        string t = text.ToLowerInvariant();
        for (int i = 0; i < t.Length; i++)
        {
            if (t[i] is '#' or '♯') total++;
            else if (t[i] == '♭') total--;
            else if (string.CompareOrdinal(t, i, "sharp", 0, 5) == 0) { total++; i += 4; }
            else if (string.CompareOrdinal(t, i, "flat", 0, 4) == 0) { total--; i += 3; }
            else if (t[i] == 'b') total--;
        }
        return total;
    }

    public static string Format(MusicKey? key) => key?.ToString() ?? "unparsed";
}
