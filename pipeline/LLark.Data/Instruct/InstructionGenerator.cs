using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using LLark.Data.Synth;

namespace LLark.Data.Instruct;

/// <summary>The facts of one clip that templates can state, read from whatever fields its manifest line has.</summary>
public sealed record ClipFacts
{
    public required string ClipId { get; init; }
    public int? Bpm { get; init; }
    public MusicalKey? Key { get; init; }
    public string? Meter { get; init; }
    public IReadOnlyList<string> Instruments { get; init; } = [];
    public string? Melody { get; init; }
    public IReadOnlyList<TimedChord> Chords { get; init; } = [];
    public double? Seconds { get; init; }
    /// <summary>The style when the clip has one, else the genre.</summary>
    public string? Genre { get; init; }
    public string? Caption { get; init; }
    public IReadOnlyList<string> Tags { get; init; } = [];

    public bool HasDrums => Instruments.Any(i => i.Contains("drum", StringComparison.OrdinalIgnoreCase));

    public static ClipFacts From(ClipRecord clip)
    {
        ArgumentNullException.ThrowIfNull(clip);
        string? melody = null;
        if (clip.Extra is not null && clip.Extra.TryGetValue("melody_instrument", out JsonElement m) && m.ValueKind == JsonValueKind.String)
            melody = m.GetString();
        return new ClipFacts
        {
            ClipId = clip.ClipId,
            Bpm = clip.TempoBpm is > 0 and < 400 ? (int)Math.Round(clip.TempoBpm.Value) : null,
            Key = MusicalKey.TryParse(clip.Key, out MusicalKey key) ? key : null,
            Meter = string.IsNullOrWhiteSpace(clip.Meter) ? null : clip.Meter.Trim(),
            Instruments = clip.Instruments?.Where(i => !string.IsNullOrWhiteSpace(i)).ToArray() ?? [],
            Melody = string.IsNullOrWhiteSpace(melody) ? null : melody,
            Chords = clip.Chords?.Where(c => !string.IsNullOrWhiteSpace(c.Chord)).OrderBy(c => c.Time).ToArray() ?? [],
            Seconds = clip.Seconds,
            Genre = !string.IsNullOrWhiteSpace(clip.Style) ? clip.Style : string.IsNullOrWhiteSpace(clip.Genre) ? null : clip.Genre,
            Caption = string.IsNullOrWhiteSpace(clip.Caption) ? null : clip.Caption.Trim(),
            Tags = clip.Tags?.Where(t => !string.IsNullOrWhiteSpace(t)).ToArray() ?? [],
        };
    }
}

/// <summary>
/// Writes instruction pairs for a clip from templates (<see cref="Templates"/>): a task is asked only when the clip
/// has the facts it needs, every family the clip supports appears, and the same seed gives the same pairs.
/// </summary>
public static partial class InstructionGenerator
{
    private static readonly string[] UnderstandingTasks = ["tempo", "tempo_feel", "key", "mode", "meter", "instruments", "melody_instrument", "drums", "chords", "chord_at", "first_chord", "genre", "tags"];
    private static readonly string[] ReasoningTasks = ["scene", "play_along", "bedtime_story", "style_change", "dance"];
    private static readonly HashSet<string> ReservedForms = Templates.Reserved.Select(Normalise).ToHashSet(StringComparer.Ordinal);

    public static string Family(string task) => task == "caption" ? "captioning" : ReasoningTasks.Contains(task) ? "reasoning" : "understanding";

    /// <summary>The tasks a clip's facts allow.</summary>
    public static IReadOnlyList<string> Tasks(ClipFacts f)
    {
        ArgumentNullException.ThrowIfNull(f);
        var tasks = new List<string>();
        if (f.Bpm is not null) tasks.AddRange(["tempo", "tempo_feel"]);
        if (f.Key is not null) tasks.AddRange(["key", "mode"]);
        if (f.Meter is not null) tasks.Add("meter");
        if (f.Instruments.Count > 0) tasks.Add("instruments");
        if (f.Melody is not null) tasks.Add("melody_instrument");
        // Only a clip whose instrument list is complete (a synthetic one, with a melody label) can say "no drums".
        if (f.Instruments.Count > 0 && (f.HasDrums || f.Melody is not null)) tasks.Add("drums");
        if (f.Chords.Count > 0) tasks.AddRange(["chords", "first_chord"]);
        if (f.Chords.Count > 1 && f.Seconds is > 0) tasks.Add("chord_at");
        if (f.Genre is not null) tasks.Add("genre");
        if (f.Tags.Count > 0) tasks.Add("tags");
        if (f.Caption is not null || CanDescribe(f)) tasks.Add("caption");
        bool mood = f.Key is not null && f.Bpm is not null;
        if (mood) tasks.Add("scene");
        if (f.Key is not null && f.Bpm is not null && f.Meter is not null) tasks.Add("play_along");
        if (mood && (f.Melody is not null || f.Instruments.Count > 0)) tasks.Add("bedtime_story");
        if (f.Genre is not null && f.Bpm is not null) tasks.Add("style_change");
        if (f.Bpm is not null && f.Meter is not null) tasks.Add("dance");
        return tasks;
    }

    private static bool CanDescribe(ClipFacts f) =>
        new[] { f.Bpm is not null, f.Key is not null, f.Instruments.Count > 0, f.Genre is not null }.Count(b => b) >= 2 && f.Key is not null && f.Bpm is not null;

    /// <summary>
    /// <paramref name="perClip"/> single-turn pairs (one family each at least, where the facts allow), and with
    /// probability <paramref name="conversationRate"/> one multi-turn conversation of 2-4 turns. A share
    /// <paramref name="shortAnswerRate"/> of the single-turn questions about one fact (tempo, key, mode, meter, melody
    /// instrument, genre) ask for a brief answer and get the bare value ("Just the number, please." / "121 BPM"); at 0,
    /// the default, the pairs are the same as without the option, draw for draw.
    /// </summary>
    public static IReadOnlyList<InstructionPair> ForClip(ClipRecord clip, long seed, int perClip = 8, double conversationRate = 0.3, double shortAnswerRate = 0)
    {
        if (shortAnswerRate is < 0 or > 1 || double.IsNaN(shortAnswerRate))
            throw new ArgumentOutOfRangeException(nameof(shortAnswerRate), shortAnswerRate, "the short-answer rate is a share, between 0 and 1");
        ClipFacts facts = ClipFacts.From(clip);
        var rng = new Random(SongPlanner.Mix(seed, StableHash(facts.ClipId), 3));
        IReadOnlyList<string> tasks = Tasks(facts);
        var pairs = new List<InstructionPair>();
        if (tasks.Count == 0 || perClip <= 0) return pairs;

        var chosen = new List<string>();
        foreach (string family in InstructionPair.Families)
        {
            string[] ofFamily = tasks.Where(t => Family(t) == family).ToArray();
            if (ofFamily.Length > 0) chosen.Add(ofFamily[rng.Next(ofFamily.Length)]);
        }
        var rest = tasks.Except(chosen).OrderBy(_ => rng.Next()).ToList();
        while (chosen.Count < perClip && rest.Count > 0) { chosen.Add(rest[0]); rest.RemoveAt(0); }
        while (chosen.Count < perClip) chosen.Add(tasks[rng.Next(tasks.Count)]);
        if (chosen.Count > perClip) chosen.RemoveRange(perClip, chosen.Count - perClip);

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string task in chosen)
        {
            InstructionPair? pair = Ask(task, facts, rng, followUp: false);
            // The draw is made only when short answers are asked for, so that a rate of 0 leaves the stream as it was.
            if (pair is not null && shortAnswerRate > 0 && ShortAnswer(task, facts, rng) is { } brief && rng.NextDouble() < shortAnswerRate)
                pair = Shorten(pair, brief, rng);
            if (pair is not null && seen.Add(pair.Query)) pairs.Add(pair);
        }

        string[] talkable = tasks.Where(t => Templates.FollowUps.ContainsKey(t)).ToArray();
        if (talkable.Length >= 2 && rng.NextDouble() < conversationRate)
        {
            string id = $"{facts.ClipId}#conversation";
            int turns = Math.Min(talkable.Length, 2 + rng.Next(3));
            string[] order = talkable.OrderBy(_ => rng.Next()).Take(turns).ToArray();
            for (int i = 0; i < order.Length; i++)
            {
                InstructionPair? pair = Ask(order[i], facts, rng, followUp: i > 0);
                if (pair is not null) pairs.Add(pair with { Conversation = id });
            }
        }
        return pairs;
    }

    /// <summary>The bare value a brief answer to <paramref name="task"/> gives, or null when the task has no one-fact answer.</summary>
    private static string? ShortAnswer(string task, ClipFacts f, Random rng) => task switch
    {
        "tempo" when f.Bpm is int bpm => bpm.ToString(CultureInfo.InvariantCulture) + " BPM",
        "key" when f.Key is MusicalKey key => $"{KeyTonic(key, rng.Next(3))} {(key.Mode == Mode.Major ? "major" : "minor")}",
        "mode" when f.Key is MusicalKey key => key.Mode == Mode.Major ? "Major" : "Minor",
        "meter" when f.Meter is not null => f.Meter,
        "melody_instrument" when f.Melody is not null => Capitalise(StripArticle(InstrumentPhrase(f.Melody, rng))),
        "genre" when f.Genre is not null => Capitalise(Pick(rng, Words(Templates.GenreWords, f.Genre))),
        _ => null,
    };

    private static InstructionPair Shorten(InstructionPair pair, string brief, Random rng)
    {
        IReadOnlyList<string> cues = pair.Task == "tempo" ? Templates.BriefTempoCues : Templates.BriefCues;
        string cue = Pick(rng, cues);
        // A question that already opens with a lead-in ("Music question: ...") takes its cue at the end.
        if (cue.EndsWith(": ", StringComparison.Ordinal) && (pair.Query.Contains(": ", StringComparison.Ordinal) || pair.Query.Contains(". ", StringComparison.Ordinal)))
            cue = Pick(rng, cues.Where(c => !c.EndsWith(": ", StringComparison.Ordinal)).ToArray());
        string query = cue.EndsWith(": ", StringComparison.Ordinal)
            ? cue + char.ToLowerInvariant(pair.Query[0]) + pair.Query[1..]
            : pair.Query + " " + cue;
        return pair with { Query = Capitalise(query), Response = Capitalise(brief) };
    }

    private static string StripArticle(string phrase) =>
        phrase.StartsWith("a ", StringComparison.Ordinal) ? phrase[2..] : phrase.StartsWith("an ", StringComparison.Ordinal) ? phrase[3..] : phrase;

    /// <summary>FNV-1a of the clip id: string.GetHashCode differs between processes, this does not.</summary>
    public static long StableHash(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        ulong h = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(text)) h = unchecked((h ^ b) * 1099511628211UL);
        return (long)(h & 0x7FFFFFFFFFFFFFFF);
    }

    public static bool IsReserved(string query) => ReservedForms.Contains(Normalise(query));

    private static string Normalise(string query) => string.Join(' ', query.Trim().ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries));

    private static InstructionPair? Ask(string task, ClipFacts f, Random rng, bool followUp)
    {
        var slots = Slots(f, rng);
        string? query = null, response = null;
        switch (task)
        {
            case "chord_at":
            {
                TimedChord c = f.Chords[rng.Next(f.Chords.Count)];
                double end = f.Chords.FirstOrDefault(x => x.Time > c.Time)?.Time ?? f.Seconds!.Value;
                double at = Math.Round(c.Time + (end - c.Time) * (0.25 + 0.5 * rng.NextDouble()));
                if (at < c.Time || at >= end) at = Math.Round(c.Time + (end - c.Time) / 2, 1);
                slots["time"] = at.ToString("0.#", CultureInfo.InvariantCulture);
                slots["chord"] = c.Chord;
                break;
            }
            case "first_chord":
                slots["chord"] = f.Chords[0].Chord;
                break;
            case "style_change":
            {
                string current = f.Genre!;
                string[] targets = Templates.StyleRecipes.Keys.Where(k => !string.Equals(k, current, StringComparison.OrdinalIgnoreCase)).ToArray();
                string target = targets[rng.Next(targets.Length)];
                string targetWords = Pick(rng, Words(Templates.GenreWords, target));
                slots["target"] = targetWords;
                slots["a_target"] = Article(targetWords) + " " + targetWords;
                slots["target_words"] = targetWords;
                slots["current"] = Pick(rng, Words(Templates.GenreWords, current));
                response = Fill(Pick(rng, Templates.StyleChangeAnswers), slots, rng)?.Replace("{steps}", StyleSteps(f, target, rng, slots), StringComparison.Ordinal);
                break;
            }
        }
        string[] questions = followUp && Templates.FollowUps.TryGetValue(task, out var follow) ? [.. follow] : [.. Templates.Questions[task]];
        for (int attempt = 0; attempt < 8 && query is null; attempt++)
        {
            string? q = Fill(Pick(rng, questions), slots, rng);
            if (q is null) continue;
            if (!followUp && rng.Next(5) == 0)
            {
                string lead = Pick(rng, Templates.LeadIns);
                q = lead + (lead.EndsWith(". ", StringComparison.Ordinal) ? q : char.ToLowerInvariant(q[0]) + q[1..]);
            }
            if (!IsReserved(q)) query = q;
        }
        response ??= Answer(task, f, slots, rng);
        if (query is null || string.IsNullOrWhiteSpace(response)) return null;
        return new InstructionPair { ClipId = f.ClipId, Family = Family(task), Task = task, Query = Capitalise(query), Response = Capitalise(response) };
    }

    private static string? Answer(string task, ClipFacts f, Dictionary<string, string> slots, Random rng)
    {
        switch (task)
        {
            case "drums":
                return Fill(Pick(rng, Templates.Answers[f.HasDrums ? "drums_yes" : "drums_no"]), slots, rng);
            case "chords":
                return Fill(Pick(rng, Templates.Answers[rng.Next(3) == 0 && f.Chords.Count > 1 ? "chords_timed" : "chords"]), slots, rng);
            case "caption":
                return f.Caption ?? Describe(f, slots, rng);
            case "scene":
                return Fill(Pick(rng, Templates.SceneAnswers), slots, rng);
            case "play_along":
            {
                slots["chord_hint"] = f.Chords.Count > 0 ? Fill(Pick(rng, Templates.ChordHints), slots, rng) ?? "" : "";
                slots["beat_hint"] = f.HasDrums ? Pick(rng, Templates.BeatHints) : "";
                return Fill(Pick(rng, Templates.PlayAlongAnswers), slots, rng);
            }
            case "bedtime_story":
            {
                string[][] parts = Templates.StoryParts[(f.Key!.Value.Mode == Mode.Major, f.Bpm >= 110)];
                string character = Pick(rng, parts[1]);
                slots["place"] = Pick(rng, parts[0]);
                slots["character"] = character;
                slots["character_short"] = character.Split(' ')[^1];
                slots["activity"] = Pick(rng, parts[2]);
                slots["theme"] = Pick(rng, parts[3]);
                slots["ending"] = Pick(rng, parts[4]);
                slots["image"] = Pick(rng, parts[5]);
                slots["instrument"] = slots.TryGetValue("melody", out string? melody) ? melody : slots["instruments"];
                return Fill(Pick(rng, Templates.StoryAnswers), slots, rng);
            }
            case "dance":
            {
                int beats = slots.TryGetValue("beats", out string? b) ? int.Parse(b, CultureInfo.InvariantCulture) : 4;
                string dance = f.Genre is not null && Templates.StyleDances.TryGetValue(f.Genre, out string? d) ? d
                    : beats == 3 ? Templates.TripleDance : f.Bpm < 80 ? Templates.SlowDance : Templates.DefaultDance;
                slots["dance"] = dance;
                slots["count"] = Templates.Counts.TryGetValue(beats, out string? count) ? count : Templates.Counts[4];
                slots["danceable"] = Pick(rng, f.Bpm >= 100 ? Templates.Danceable : Templates.GentlyDanceable);
                return Fill(Pick(rng, Templates.DanceAnswers), slots, rng);
            }
            default:
                return Templates.Answers.TryGetValue(task, out var answers) ? Fill(Pick(rng, answers), slots, rng) : null;
        }
    }

    private static string StyleSteps(ClipFacts f, string target, Random rng, Dictionary<string, string> slots)
    {
        var recipe = Templates.StyleRecipes[target];
        var steps = new List<string>();
        int bpm = f.Bpm!.Value;
        if (bpm < recipe.Low || bpm > recipe.High)
        {
            int targetBpm = (int)Math.Round((recipe.Low + recipe.High) / 2.0 / 2) * 2;
            slots["target_bpm"] = targetBpm.ToString(CultureInfo.InvariantCulture);
            steps.Add(Fill(Pick(rng, targetBpm > bpm ? Templates.SpeedUp : Templates.SlowDown), slots, rng)!);
        }
        else
        {
            steps.Add(Fill(Pick(rng, Templates.KeepTempo), slots, rng)!);
        }
        steps.Add("use " + recipe.Rhythm);
        steps.Add((slots.TryGetValue("melody", out string? melody) ? $"swap {melody} for " : "bring in ") + recipe.Instruments);
        steps.Add("lean on " + recipe.Harmony);
        return Join(steps, rng.Next(2) == 0 ? "; " : ", ");
    }

    private static string Describe(ClipFacts f, Dictionary<string, string> slots, Random rng)
    {
        var sentences = new List<string>();
        IReadOnlyList<string> openings = slots.ContainsKey("genre_words")
            ? slots.ContainsKey("melody") ? Templates.CaptionOpenings : Templates.CaptionOpeningsNoMelody
            : slots.ContainsKey("melody") ? Templates.CaptionOpeningsNoGenre : Templates.CaptionOpeningsNoMelody;
        string? opening = Fill(Pick(rng, openings), slots, rng);
        if (opening is null && slots.ContainsKey("mood"))
            opening = Fill(Pick(rng, Templates.CaptionMood), slots, rng);
        if (opening is not null) sentences.Add(opening);
        var middle = new List<string>();
        if (slots.ContainsKey("backing")) middle.Add(Fill(Pick(rng, Templates.CaptionBacking), slots, rng)!);
        else if (!slots.ContainsKey("melody") && slots.ContainsKey("instruments")) middle.Add(Fill(Pick(rng, Templates.CaptionInstrumentsOnly), slots, rng)!);
        if (f.Bpm is not null) middle.Add(Fill(Pick(rng, f.Meter is not null ? Templates.CaptionTempo : Templates.CaptionTempoNoMeter), slots, rng)!);
        if (f.Key is not null)
            middle.Add(Fill(Pick(rng, Templates.CaptionKey), slots, rng)! + (f.Chords.Count > 1 && rng.Next(2) == 0 ? Fill(Pick(rng, Templates.CaptionChords), slots, rng) : ""));
        sentences.AddRange(middle.OrderBy(_ => rng.Next()));
        if (slots.ContainsKey("mood2")) sentences.Add(Fill(Pick(rng, Templates.CaptionMood), slots, rng)!);
        return string.Join(' ', sentences.Where(s => !string.IsNullOrWhiteSpace(s)).Select(Capitalise));
    }

    /// <summary>The values a clip gives to template placeholders, phrased afresh for each pair.</summary>
    private static Dictionary<string, string> Slots(ClipFacts f, Random rng)
    {
        var inv = CultureInfo.InvariantCulture;
        var s = new Dictionary<string, string>(StringComparer.Ordinal);
        if (f.Bpm is int bpm)
        {
            int band = 0;
            while (bpm > Templates.TempoFeel[band].UpTo) band++;
            s["bpm"] = bpm.ToString(inv);
            s["feel"] = Pick(rng, Templates.TempoFeel[band].Words);
            s["a_feel"] = Article(s["feel"]) + " " + s["feel"];
            s["feel_adverb"] = Templates.TempoAdverbs[band];
            s["tempo"] = Fill(Pick(rng, Templates.TempoPhrases), s, rng)!;
            s["tempo_plain"] = Fill(Pick(rng, Templates.TempoPhrases.Where(p => !p.Contains("feel}", StringComparison.Ordinal)).ToArray()), s, rng)!;
        }
        if (f.Key is MusicalKey key)
        {
            string tonic = KeyTonic(key, rng.Next(3));
            string mode = key.Mode == Mode.Major ? "major" : "minor";
            s["tonic"] = tonic;
            s["mode"] = mode;
            s["key"] = $"{tonic} {mode}";
            string[] scale = key.Steps.Select(step => key.PitchName(key.Tonic + step)).ToArray();
            scale[0] = MusicalKey.TonicNames[key.Tonic];
            s["scale"] = Join(scale);
        }
        if (f.Meter is not null)
        {
            s["meter"] = f.Meter;
            string[] parts = f.Meter.Split('/');
            if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.Integer, inv, out int beats)) s["beats"] = beats.ToString(inv);
            s["meter_words"] = Templates.MeterWords.TryGetValue(f.Meter, out string[]? words) ? Pick(rng, words) : f.Meter;
        }
        if (f.Instruments.Count > 0)
        {
            string[] phrases = f.Instruments.Select(i => InstrumentPhrase(i, rng)).ToArray();
            s["instruments"] = Join(phrases);
            if (f.Melody is not null)
            {
                s["melody"] = InstrumentPhrase(f.Melody, rng);
                s["melody_cap"] = Capitalise(s["melody"]);
                string[] backing = f.Instruments.Where(i => !string.Equals(i, f.Melody, StringComparison.OrdinalIgnoreCase)).Select(i => InstrumentPhrase(i, rng)).ToArray();
                if (backing.Length > 0) s["backing"] = Join(backing);
            }
        }
        if (f.Chords.Count > 0)
        {
            string[] sequence = f.Chords.Select(c => c.Chord).Take(8).ToArray();
            s["chords"] = Join(sequence);
            s["chord_set"] = Join(f.Chords.Select(c => c.Chord).Distinct(StringComparer.Ordinal).ToArray());
            s["timed_chords"] = Join(f.Chords.Take(8).Select(c => Fill(Pick(rng, Templates.TimedChord),
                new Dictionary<string, string> { ["chord"] = c.Chord, ["time"] = c.Time.ToString("0.#", inv) }, rng)!).ToArray());
        }
        if (f.Genre is not null)
        {
            string genre = Pick(rng, Words(Templates.GenreWords, f.Genre));
            s["genre"] = genre;
            s["genre_words"] = genre;
            s["a_genre"] = Article(genre) + " " + genre;
        }
        if (f.Tags.Count > 0) s["tags"] = string.Join(", ", f.Tags.Take(10));
        if (f.Key is MusicalKey k && f.Bpm is int b)
        {
            bool major = k.Mode == Mode.Major, fast = b >= 110;
            var moods = Templates.Moods[(major, fast)].ToList();
            if (f.Genre is not null && Templates.StyleMoods.TryGetValue(f.Genre, out string[]? styleMoods)) moods.AddRange(styleMoods);
            string[] two = moods.OrderBy(_ => rng.Next()).Take(2).ToArray();
            s["mood"] = two[0];
            s["mood2"] = two[1];
            s["a_mood"] = Article(two[0]) + " " + two[0];
            var scenes = Templates.Scenes[(major, fast)].ToList();
            if (f.Genre is not null && Templates.StyleScenes.TryGetValue(f.Genre, out string[]? styleScenes)) scenes.InsertRange(0, styleScenes);
            string[] pair = scenes.Take(3).OrderBy(_ => rng.Next()).Take(1).Concat(scenes.Skip(3).OrderBy(_ => rng.Next()).Take(1)).ToArray();
            s["scene1"] = pair[0];
            s["scene2"] = pair.Length > 1 ? pair[1] : scenes[^1];
        }
        return s;
    }

    /// <summary>"F#", "F-sharp" or "F sharp" (and the same for flats), as people write keys.</summary>
    public static string KeyTonic(MusicalKey key, int style)
    {
        string name = MusicalKey.TonicNames[key.Tonic];
        if (name.Length == 1 || style == 0) return name;
        string accidental = name[1] == '#' ? "sharp" : "flat";
        return style == 1 ? $"{name[0]}-{accidental}" : $"{name[0]} {accidental}";
    }

    public static string InstrumentPhrase(string label, Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (Templates.InstrumentWords.TryGetValue(label, out string[]? words)) return Pick(rng, words);
        string plain = ParenRegex().Replace(label, "").Trim().ToLowerInvariant();
        return plain.EndsWith('s') ? plain : $"{Article(plain)} {plain}";
    }

    private static string[] Words(IReadOnlyDictionary<string, string[]> table, string key) =>
        table.TryGetValue(key, out string[]? words) ? words : [key.ToLowerInvariant()];

    private static string Article(string word) => word.Length > 0 && "aeiouAEIOU".Contains(word[0], StringComparison.Ordinal) ? "an" : "a";

    private static string Capitalise(string text) => text.Length == 0 ? text : char.ToUpperInvariant(text[0]) + text[1..];

    private static string Join(IReadOnlyList<string> items, string separator = ", ") => items.Count switch
    {
        0 => "",
        1 => items[0],
        _ => string.Join(separator, items.Take(items.Count - 1)) + $" {Templates.And} " + items[^1],
    };

    private static T Pick<T>(Random rng, IReadOnlyList<T> items) => items[rng.Next(items.Count)];

    /// <summary>Fills {name} (and {Name}, capitalised) from the slots; null when a placeholder has no value.</summary>
    internal static string? Fill(string template, IReadOnlyDictionary<string, string> slots, Random rng)
    {
        _ = rng;
        bool missing = false;
        // A template that names the tempo's feel itself gets the tempo without one ("a lively 130 bpm, a lively pace").
        bool saysFeel = template.Contains("feel}", StringComparison.OrdinalIgnoreCase);
        string text = PlaceholderRegex().Replace(template, m =>
        {
            string name = m.Groups[1].Value;
            if (name == "steps") return m.Value;
            if (saysFeel && (name is "tempo" or "Tempo") && slots.TryGetValue("tempo_plain", out string? plain)) return name == "Tempo" ? Capitalise(plain) : plain;
            if (slots.TryGetValue(name, out string? value)) return value;
            string lower = char.ToLowerInvariant(name[0]) + name[1..];
            if (char.IsUpper(name[0]) && slots.TryGetValue(lower.Replace("_cap", "", StringComparison.Ordinal), out value)) return Capitalise(value);
            missing = true;
            return "";
        });
        return missing ? null : text;
    }

    [GeneratedRegex(@"\{([A-Za-z_0-9]+)\}")]
    private static partial Regex PlaceholderRegex();

    [GeneratedRegex(@"\([^)]*\)")]
    private static partial Regex ParenRegex();
}
