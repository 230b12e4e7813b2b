using System.Globalization;

namespace LLark.Data.Synth;

public enum Mode
{
    Major,
    Minor,
}

/// <summary>A key: tonic pitch class (0 = C) and mode. Names use the manifest's spelling, tonics C C# D Eb E F F# G Ab A Bb B.</summary>
public readonly record struct MusicalKey(int Tonic, Mode Mode)
{
    public static readonly IReadOnlyList<string> TonicNames = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];

    private static readonly string[] SharpNames = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
    private static readonly string[] FlatNames = ["C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"];

    private static readonly int[] MajorSteps = [0, 2, 4, 5, 7, 9, 11];
    private static readonly int[] MinorSteps = [0, 2, 3, 5, 7, 8, 10];

    public string Name => $"{TonicNames[Tonic]} {(Mode == Mode.Major ? "major" : "minor")}";

    public override string ToString() => Name;

    /// <summary>Semitones above the tonic of the seven degrees (natural minor for minor keys).</summary>
    public IReadOnlyList<int> Steps => Mode == Mode.Major ? MajorSteps : MinorSteps;

    /// <summary>The pitch classes a melody in this key may use: the scale, plus the raised leading tone in minor.</summary>
    public IReadOnlySet<int> ScalePitchClasses
    {
        get
        {
            int tonic = Tonic;
            var set = Steps.Select(s => (tonic + s) % 12).ToHashSet();
            if (Mode == Mode.Minor) set.Add((Tonic + 11) % 12);
            return set;
        }
    }

    /// <summary>Flat keys spell their chords with flats (Bb, Eb), the others with sharps.</summary>
    public bool UsesFlats => Mode == Mode.Major ? Tonic is 5 or 10 or 3 or 8 : Tonic is 2 or 7 or 0 or 5 or 10 or 3 or 8;

    public string PitchName(int pitchClass) => (UsesFlats ? FlatNames : SharpNames)[((pitchClass % 12) + 12) % 12];

    /// <summary>Parses "F# minor", "Eb major", "F-sharp minor", "Gb major" into a key (enharmonics fold together).</summary>
    public static bool TryParse(string? text, out MusicalKey key)
    {
        key = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        string[] parts = text.Trim().Replace("-", " ", StringComparison.Ordinal).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2) return false;
        string mode = parts[^1].ToLowerInvariant();
        if (mode is not ("major" or "minor")) return false;
        string tonic = string.Concat(parts[..^1]).ToLowerInvariant().Replace("sharp", "#", StringComparison.Ordinal)
            .Replace("flat", "b", StringComparison.Ordinal).Replace("♯", "#", StringComparison.Ordinal).Replace("♭", "b", StringComparison.Ordinal);
        if (tonic.Length == 0) return false;
        int pc = char.ToUpperInvariant(tonic[0]) switch
        {
            'C' => 0, 'D' => 2, 'E' => 4, 'F' => 5, 'G' => 7, 'A' => 9, 'B' => 11, _ => -1,
        };
        if (pc < 0) return false;
        foreach (char c in tonic[1..])
        {
            if (c == '#') pc++;
            else if (c == 'b') pc--;
            else return false;
        }
        key = new MusicalKey(((pc % 12) + 12) % 12, mode == "major" ? Mode.Major : Mode.Minor);
        return true;
    }
}

public enum ChordQuality
{
    Major,
    Minor,
    Diminished,
    Dominant7,
    Major7,
    Minor7,
    HalfDiminished7,
}

/// <summary>A chord: root pitch class and quality.</summary>
public readonly record struct Chord(int Root, ChordQuality Quality)
{
    public IReadOnlyList<int> Intervals => Quality switch
    {
        ChordQuality.Major => [0, 4, 7],
        ChordQuality.Minor => [0, 3, 7],
        ChordQuality.Diminished => [0, 3, 6],
        ChordQuality.Dominant7 => [0, 4, 7, 10],
        ChordQuality.Major7 => [0, 4, 7, 11],
        ChordQuality.Minor7 => [0, 3, 7, 10],
        _ => [0, 3, 6, 10],
    };

    public IEnumerable<int> PitchClasses
    {
        get
        {
            int root = Root;
            return Intervals.Select(i => (root + i) % 12);
        }
    }

    public string Symbol(MusicalKey key) => key.PitchName(Root) + Quality switch
    {
        ChordQuality.Major => "",
        ChordQuality.Minor => "m",
        ChordQuality.Diminished => "dim",
        ChordQuality.Dominant7 => "7",
        ChordQuality.Major7 => "maj7",
        ChordQuality.Minor7 => "m7",
        _ => "m7b5",
    };
}

/// <summary>Roman-numeral progressions ("I V vi IV", "i iv V7 i", "Imaj7 vi7 ii7 V7") read against a key.</summary>
public static class Roman
{
    private static readonly string[] Numerals = ["vii", "iii", "vi", "iv", "ii", "v", "i"];

    /// <summary>One numeral to a chord: case gives major/minor, "°" diminished, "ø7" half-diminished, "7"/"maj7" sevenths.</summary>
    public static Chord Parse(string numeral, MusicalKey key)
    {
        ArgumentNullException.ThrowIfNull(numeral);
        string lower = numeral.ToLowerInvariant();
        string? roman = Numerals.FirstOrDefault(n => lower.StartsWith(n, StringComparison.Ordinal))
            ?? throw new FormatException($"not a roman numeral: {numeral}");
        int degree = roman switch { "i" => 0, "ii" => 1, "iii" => 2, "iv" => 3, "v" => 4, "vi" => 5, _ => 6 };
        bool upper = char.IsUpper(numeral[0]);
        string suffix = numeral[roman.Length..];
        int root = (key.Tonic + key.Steps[degree]) % 12;
        ChordQuality quality = suffix switch
        {
            "" => upper ? ChordQuality.Major : ChordQuality.Minor,
            "°" => ChordQuality.Diminished,
            "ø7" => ChordQuality.HalfDiminished7,
            "7" => upper ? ChordQuality.Dominant7 : ChordQuality.Minor7,
            "maj7" => ChordQuality.Major7,
            _ => throw new FormatException($"unknown chord suffix in {numeral}"),
        };
        return new Chord(root, quality);
    }

    public static IReadOnlyList<Chord> Progression(string numerals, MusicalKey key)
    {
        ArgumentNullException.ThrowIfNull(numerals);
        return numerals.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(n => Parse(n, key)).ToArray();
    }

    internal static string Format(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);
}
