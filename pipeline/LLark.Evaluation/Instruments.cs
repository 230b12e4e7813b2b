namespace LLark.Evaluation;

/// <summary>
/// General MIDI level 1: the 128 program names (0-based), their 16 families of eight, and the drum kit (channel 10,
/// here program <see cref="Drums"/>), so that a label or a free-text mention can be resolved to programs.
/// </summary>
public static class GeneralMidi
{
    /// <summary>The drum kit, which GM gives no program number: it is channel 10.</summary>
    public const int Drums = 128;

    public static IReadOnlyList<string> Names { get; } =
    [
        "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano", "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavi",
        "Celesta", "Glockenspiel", "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
        "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica", "Tango Accordion",
        "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)", "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar", "Guitar harmonics",
        "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass", "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
        "Violin", "Viola", "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
        "String Ensemble 1", "String Ensemble 2", "SynthStrings 1", "SynthStrings 2", "Choir Aahs", "Voice Oohs", "Synth Voice", "Orchestra Hit",
        "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section", "SynthBrass 1", "SynthBrass 2",
        "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet",
        "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
        "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)", "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
        "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
        "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)", "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
        "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba", "Bag pipe", "Fiddle", "Shanai",
        "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
        "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter", "Applause", "Gunshot",
    ];

    public static IReadOnlyList<string> Families { get; } =
    [
        "Piano", "Chromatic Percussion", "Organ", "Guitar", "Bass", "Strings", "Ensemble", "Brass",
        "Reed", "Pipe", "Synth Lead", "Synth Pad", "Synth Effects", "Ethnic", "Percussive", "Sound Effects", "Drums",
    ];

    public static string Name(int program) => program == Drums ? "Drums" : Names[program];

    /// <summary>0..15 for programs (eight to a family), 16 for the drum kit.</summary>
    public static int Family(int program) => program == Drums ? 16 : program / 8;
}

/// <summary>
/// Resolves an instrument label or a free-text mention to the General MIDI programs it can mean. A GM name matches
/// exactly ("Acoustic Guitar (steel)" is program 25); plain words match by their head noun and the GM words before it
/// ("an acoustic guitar" is {nylon, steel}; "guitar" is every guitar; "piano" every piano), or through a short list of
/// everyday names ("saxophone", "strings", "vocals", "drums", "synth", "keyboard", "double bass"). In an answer the
/// earliest mention wins. A reference and an answer agree when their program sets meet (accuracy), or their families
/// do (family accuracy).
/// </summary>
public static class InstrumentMatcher
{
    // Initialised in this order: the heads need the weak heads, the modifiers need the heads.
    // Heads that are too generic or too often other words to stand alone ("lead guitar", "drum and bass", "noise").
    private static readonly HashSet<string> WeakHeads =
    [
        "lead", "pad", "fx", "box", "section", "hit", "bottle", "aahs", "oohs", "ensemble", "voice", "noise", "seashore",
        "tweet", "ring", "helicopter", "applause", "gunshot", "drum", "drums", "tom", "cymbal", "harmonics", "strings",
        "1", "2", "synthstrings", "synthbrass",
    ];

    private static readonly Dictionary<string, int[]> Phrases = BuildPhrases();
    private static readonly Dictionary<string, int[]> Heads = BuildHeads();
    private static readonly HashSet<string> Modifiers = BuildModifiers();
    private static readonly int LongestPhrase = Phrases.Keys.Max(k => k.Split(' ').Length);

    /// <summary>An instrument found in text: the programs it can mean and the words it was read from.</summary>
    public sealed record Mention(IReadOnlyList<int> Programs, string Matched, int Index)
    {
        public IEnumerable<int> FamilyIds => Programs.Select(GeneralMidi.Family).Distinct();

        /// <summary>One readable name: the GM name when it is one program, else the matched words.</summary>
        public string Display => Programs.Count == 1 ? GeneralMidi.Name(Programs[0]) : Matched;
    }

    /// <summary>A label as a dataset gives it: an exact GM name first, else the free-text rules.</summary>
    public static Mention? ResolveLabel(string? label)
    {
        if (string.IsNullOrWhiteSpace(label)) return null;
        string normal = Normalise(label);
        for (int p = 0; p < GeneralMidi.Names.Count; p++)
        {
            if (Normalise(GeneralMidi.Names[p]) == normal) return new Mention([p], label.Trim(), 0);
        }
        return Find(label);
    }

    /// <summary>The earliest instrument mentioned in free text.</summary>
    public static Mention? Find(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        List<(string Word, int Index)> words = GenreAnswerParser.WordSpans(text);
        for (int i = 0; i < words.Count; i++)
        {
            for (int n = Math.Min(LongestPhrase, words.Count - i); n >= 1; n--)
            {
                string phrase = string.Join(' ', words.Skip(i).Take(n).Select(w => w.Word));
                if (Phrases.TryGetValue(phrase, out int[]? programs))
                    return new Mention(programs, Span(text, words, i, n), words[i].Index);
            }
            if (Heads.TryGetValue(words[i].Word, out int[]? byHead))
            {
                int first = i;
                var wanted = new List<string>();
                while (first > 0 && i - first < 3 && Modifiers.Contains(words[first - 1].Word))
                {
                    first--;
                    wanted.Add(words[first].Word);
                }
                int[] narrowed = [.. byHead.Where(p => wanted.All(w => Tokens(GeneralMidi.Names[p]).Contains(w)))];
                if (narrowed.Length == 0)
                {
                    narrowed = byHead;
                    first = i;
                }
                return new Mention(narrowed, Span(text, words, first, i - first + 1), words[first].Index);
            }
        }
        return null;
    }

    public static bool SameInstrument(Mention reference, Mention? answer) =>
        answer is not null && reference.Programs.Intersect(answer.Programs).Any();

    public static bool SameFamily(Mention reference, Mention? answer) =>
        answer is not null && reference.FamilyIds.Intersect(answer.FamilyIds).Any();

    private static string Span(string text, List<(string Word, int Index)> words, int first, int count) =>
        text[words[first].Index..(words[first + count - 1].Index + words[first + count - 1].Word.Length)];

    private static string Normalise(string name) => string.Join(' ', GenreAnswerParser.WordSpans(name).Select(w => w.Word));

    private static List<string> Tokens(string name) => [.. GenreAnswerParser.WordSpans(name).Select(w => w.Word)];

    /// <summary>The head noun of a GM name: its last word outside parentheses that is not a number.</summary>
    private static string Head(string name)
    {
        int paren = name.IndexOf('(', StringComparison.Ordinal);
        string outside = paren < 0 ? name : name[..paren];
        return Tokens(outside).Last(w => !char.IsDigit(w[0]));
    }

    private static Dictionary<string, int[]> BuildHeads()
    {
        var heads = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        for (int p = 0; p < 120; p++)
        {
            string head = Head(GeneralMidi.Names[p]);
            if (WeakHeads.Contains(head)) continue;
            if (!heads.TryGetValue(head, out List<int>? list)) heads[head] = list = [];
            list.Add(p);
        }
        return heads.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray(), StringComparer.Ordinal);
    }

    private static HashSet<string> BuildModifiers()
    {
        var all = new HashSet<string>(GeneralMidi.Names.SelectMany(Tokens), StringComparer.Ordinal);
        all.ExceptWith(Heads.Keys);
        all.ExceptWith(["1", "2", "3", "4", "5", "6", "7", "8", "and"]);
        return all;
    }

    private static Dictionary<string, int[]> BuildPhrases()
    {
        static int[] Range(int from, int to) => [.. Enumerable.Range(from, to - from + 1)];
        var phrases = new Dictionary<string, int[]>(StringComparer.Ordinal);
        // Every multi-word GM name without its numbers and parentheses ("electric guitar" is jazz, clean and muted), each
        // name in full ("acoustic guitar steel", "electric piano 1"), and the sound effects, which have no head.
        for (int p = 0; p < GeneralMidi.Names.Count; p++)
        {
            string name = GeneralMidi.Names[p];
            int paren = name.IndexOf('(', StringComparison.Ordinal);
            string outside = string.Join(' ', Tokens(paren < 0 ? name : name[..paren]).Where(w => !char.IsDigit(w[0])));
            if (outside.Contains(' ', StringComparison.Ordinal) || p >= 120)
                phrases[outside] = phrases.TryGetValue(outside, out int[]? had) ? [.. had, p] : [p];
            string full = Normalise(name);
            if (full != outside && full.Contains(' ', StringComparison.Ordinal)) phrases[full] = [p];
        }
        // "synth lead" and "synth pad" read as their families, not the first program named so.
        foreach ((string words, int[] programs) in new (string, int[])[]
        {
            ("saxophone", Range(64, 67)), ("saxophones", Range(64, 67)), ("sax", Range(64, 67)),
            ("strings", [48, 49, 44, 45]), ("string section", [48, 49]), ("string ensemble", [48, 49]), ("string quartet", Range(40, 43)),
            ("synth strings", [50, 51]), ("synth brass", [62, 63]), ("synth lead", Range(80, 87)), ("lead synth", Range(80, 87)),
            ("synth pad", Range(88, 95)), ("pad", Range(88, 95)), ("synth", Range(80, 95)), ("synthesizer", Range(80, 95)), ("synthesiser", Range(80, 95)),
            ("synths", Range(80, 95)), ("synthesizers", Range(80, 95)),
            ("vocals", [52, 53, 54, 85]), ("vocal", [52, 53, 54, 85]), ("voice", [52, 53, 54, 85]), ("voices", [52, 53, 54]),
            ("singer", [52, 53, 54, 85]), ("singing", [52, 53, 54, 85]), ("vocalist", [52, 53, 54, 85]), ("choir", [52, 53, 91]),
            ("drums", [GeneralMidi.Drums]), ("drum kit", [GeneralMidi.Drums]), ("drum set", [GeneralMidi.Drums]), ("drumkit", [GeneralMidi.Drums]),
            ("percussion", [GeneralMidi.Drums]), ("drum", [GeneralMidi.Drums]),
            ("keyboard", Range(0, 7)), ("keyboards", Range(0, 7)), ("keys", Range(0, 7)), ("rhodes", [4, 5]),
            ("double bass", [32, 43]), ("upright bass", [32, 43]), ("bass guitar", [33, 34, 35, 36, 37]), ("violins", [40]),
            ("horns", Range(56, 63)), ("brass", Range(56, 63)), ("horn", [60]), ("bells", [14, 112]), ("bell", [14, 112]),
            ("guitars", Range(24, 31)), ("pianos", Range(0, 5)), ("flutes", [73]), ("bagpipe", [109]), ("bagpipes", [109]),
            ("organ", Range(16, 20)), ("vibes", [11]),
        })
        {
            phrases[words] = programs;
        }
        return phrases;
    }
}
