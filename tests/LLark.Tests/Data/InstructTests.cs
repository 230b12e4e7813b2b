using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using LLark.Data;
using LLark.Data.Instruct;
using LLark.Data.Synth;

namespace LLark.Tests.Data;

public sealed partial class InstructTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llark-instruct-" + Guid.NewGuid().ToString("N"));

    public InstructTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A manifest line as <c>data synth</c> writes it, without rendering.</summary>
    internal static ClipRecord SynthLike(int index, long seed = 9)
    {
        SongSpec spec = SongPlanner.Plan(seed, index, 20);
        Song song = Composer.Compose(spec);
        return new ClipRecord
        {
            Id = spec.Id,
            Audio = $"audio/{spec.Id}.wav",
            Seconds = spec.Seconds,
            TempoBpm = spec.Bpm,
            Key = spec.Key.Name,
            Meter = spec.Meter,
            Instruments = spec.InstrumentNames,
            Chords = song.ChordLabels(),
            Genre = spec.Style.Genre,
            Style = spec.Style.Name,
            Extra = new Dictionary<string, JsonElement> { ["melody_instrument"] = JsonSerializer.SerializeToElement(spec.Melody.Name) },
        };
    }

    private static Manifest Write(string path, IEnumerable<string> lines)
    {
        File.WriteAllLines(path, lines);
        return Manifest.Load(path);
    }

    private Manifest SynthManifest(int clips) =>
        Write(Path.Combine(_dir, "manifest.jsonl"), Enumerable.Range(0, clips).Select(i => JsonLines.Serialize(SynthLike(i))));

    [Fact]
    public void EveryClipWithFullLabelsGetsEveryFamily()
    {
        InstructResult result = InstructDataset.FromTemplates(SynthManifest(30), new InstructOptions { Seed = 1 });
        Assert.Empty(result.SkippedClips);
        foreach (IGrouping<string, InstructionPair> clip in result.Pairs.GroupBy(p => p.ClipId))
            Assert.Equal(InstructionPair.Families.Order(), clip.Select(p => p.Family).Distinct().Order());
        Assert.Equal(30, result.Pairs.Select(p => p.ClipId).Distinct().Count());
        Assert.InRange(result.Conversations, 3, 20);
        foreach (IGrouping<string?, InstructionPair> conversation in result.Pairs.Where(p => p.Conversation is not null).GroupBy(p => p.Conversation))
        {
            Assert.InRange(conversation.Count(), 2, 4);
            Assert.Single(conversation.Select(p => p.ClipId).Distinct());
        }
        Assert.All(result.Pairs, p => Assert.False(string.IsNullOrWhiteSpace(p.Query) || string.IsNullOrWhiteSpace(p.Response)));
        Assert.All(result.Pairs, p => Assert.DoesNotContain("{", p.Query + p.Response, StringComparison.Ordinal));
    }

    [Fact]
    public void AnswersStateTheClipsTrueFacts()
    {
        Manifest manifest = SynthManifest(40);
        InstructResult result = InstructDataset.FromTemplates(manifest, new InstructOptions { Seed = 2, PerClip = 12 });
        var byId = manifest.Clips.ToDictionary(c => c.ClipId);
        int checkedTempo = 0, checkedKey = 0, checkedChordAt = 0;
        foreach (InstructionPair p in result.Pairs)
        {
            ClipRecord clip = byId[p.ClipId];
            string bpm = clip.TempoBpm!.Value.ToString(CultureInfo.InvariantCulture);
            switch (p.Task)
            {
                case "tempo" or "tempo_feel":
                    Assert.Matches($@"\b{bpm}\b", p.Response);
                    Assert.Single(NumberRegex().Matches(p.Response).Select(m => m.Value).Distinct());
                    checkedTempo++;
                    break;
                case "key" or "mode":
                {
                    Match m = KeyRegex().Match(p.Response);
                    Assert.True(m.Success, p.Response);
                    Assert.True(MusicalKey.TryParse(m.Value, out MusicalKey said), m.Value);
                    Assert.True(MusicalKey.TryParse(clip.Key, out MusicalKey truth));
                    Assert.Equal(truth, said);
                    checkedKey++;
                    break;
                }
                case "caption":
                    Assert.Matches($@"\b{bpm}\b", p.Response);
                    Assert.Contains(clip.Key!.Split(' ')[1], p.Response, StringComparison.Ordinal);
                    break;
                case "chords":
                    Assert.All(clip.Chords!.Take(8), c => Assert.Contains(c.Chord, p.Response, StringComparison.Ordinal));
                    break;
                case "chord_at":
                {
                    double at = double.Parse(NumberRegex().Match(p.Query).Value, CultureInfo.InvariantCulture);
                    string truth = clip.Chords!.Last(c => c.Time <= at).Chord;
                    Assert.Matches($@"(^|\s){Regex.Escape(truth)}(\s|\.|$)", p.Response);
                    checkedChordAt++;
                    break;
                }
                case "meter":
                    Assert.Matches(clip.Meter == "3/4" ? "3|three|waltz" : "4|four|common", p.Response);
                    break;
                case "melody_instrument":
                {
                    string melody = clip.Extra!["melody_instrument"].GetString()!;
                    Assert.Contains(Templates.InstrumentWords[melody], w => p.Response.Contains(w, StringComparison.OrdinalIgnoreCase));
                    break;
                }
                case "drums":
                    Assert.Equal(clip.Instruments!.Contains(Gm.DrumsName), p.Response.StartsWith("Yes", StringComparison.Ordinal) || p.Response.StartsWith("There are drums", StringComparison.Ordinal));
                    break;
            }
        }
        Assert.True(checkedTempo > 10 && checkedKey > 10 && checkedChordAt > 3, $"{checkedTempo} tempo, {checkedKey} key, {checkedChordAt} chord-at answers");
    }

    [Fact]
    public void QuestionsAndAnswersArePhrasedManyWays()
    {
        InstructResult result = InstructDataset.FromTemplates(SynthManifest(120), new InstructOptions { Seed = 3 });
        Assert.True(result.Pairs.Select(p => p.Query).Distinct().Count() > result.Pairs.Count / 3, "distinct queries");
        foreach (string task in new[] { "tempo", "key", "instruments", "genre", "caption" })
        {
            InstructionPair[] ofTask = result.Pairs.Where(p => p.Task == task).ToArray();
            Assert.True(ofTask.Select(p => p.Query).Distinct().Count() >= Math.Min(15, ofTask.Length * 2 / 3), $"{task}: {ofTask.Length} pairs");
            Assert.True(ofTask.Select(p => p.Response).Distinct().Count() >= ofTask.Length / 2, $"{task} answers");
        }
        string tempoAnswers = string.Join('\n', result.Pairs.Where(p => p.Task == "tempo").Select(p => p.Response));
        Assert.Contains(" BPM", tempoAnswers, StringComparison.Ordinal);
        Assert.Contains("beats per minute", tempoAnswers, StringComparison.Ordinal);
        string keyAnswers = string.Join('\n', result.Pairs.Where(p => p.Task is "key" or "mode" or "caption").Select(p => p.Response));
        Assert.Matches("[A-G](#|b) (major|minor)", keyAnswers);
        Assert.Matches("[A-G]-(sharp|flat) (major|minor)", keyAnswers);
        // Plain instrument words, not General MIDI's catalogue names.
        Assert.DoesNotContain("(nylon)", string.Join('\n', result.Pairs.Select(p => p.Response)), StringComparison.Ordinal);
    }

    [Fact]
    public void TheHeldOutQuestionsAreNeverAsked()
    {
        Assert.All(Templates.Questions.Values.SelectMany(q => q).Concat(Templates.FollowUps.Values.SelectMany(q => q)),
            q => Assert.False(InstructionGenerator.IsReserved(q), q));
        InstructResult result = InstructDataset.FromTemplates(SynthManifest(200), new InstructOptions { Seed = 4, PerClip = 14 });
        Assert.All(result.Pairs, p => Assert.False(InstructionGenerator.IsReserved(p.Query), p.Query));
        Assert.True(InstructionGenerator.IsReserved("  which key is this  piece in? "));
    }

    [Fact]
    public void TheSameSeedGivesTheSamePairs()
    {
        Manifest manifest = SynthManifest(20);
        string a = string.Join('\n', InstructDataset.FromTemplates(manifest, new InstructOptions { Seed = 5 }).Pairs.Select(JsonLines.Serialize));
        string b = string.Join('\n', InstructDataset.FromTemplates(manifest, new InstructOptions { Seed = 5 }).Pairs.Select(JsonLines.Serialize));
        string c = string.Join('\n', InstructDataset.FromTemplates(manifest, new InstructOptions { Seed = 6 }).Pairs.Select(JsonLines.Serialize));
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void ClipsWithFewLabelsGetOnlyWhatTheyCanAnswer()
    {
        const string caption = "A mellow lo-fi hip hop beat with a dusty piano loop, soft vinyl crackle and a relaxed boom-bap drum groove.";
        Manifest manifest = Write(Path.Combine(_dir, "real.jsonl"),
        [
            JsonLines.Serialize(new ClipRecord { Id = "musiccaps/-0Gj8-vB1q4", Audio = "musiccaps/-0Gj8-vB1q4.wav", Seconds = 10, Caption = caption, Tags = ["lo-fi", "hip hop", "piano", "mellow"] }),
            JsonLines.Serialize(new ClipRecord { Id = "musicnet/2303", Audio = "musicnet/2303.wav", Instruments = ["Piano", "Violin", "Cello"], Genre = "classical" }),
            JsonLines.Serialize(new ClipRecord { Id = "tempo-only", Audio = "t.wav", TempoBpm = 93.6 }),
            JsonLines.Serialize(new ClipRecord { Id = "nothing", Audio = "n.wav" }),
        ]);
        InstructResult result = InstructDataset.FromTemplates(manifest, new InstructOptions { Seed = 7 });
        ILookup<string, InstructionPair> byClip = result.Pairs.ToLookup(p => p.ClipId);

        InstructionPair[] caps = byClip["musiccaps/-0Gj8-vB1q4"].ToArray();
        Assert.Contains(caps, p => p.Family == "captioning" && p.Response == caption);
        Assert.All(caps, p => Assert.True(p.Task is "caption" or "tags", p.Task));

        InstructionPair[] net = byClip["musicnet/2303"].ToArray();
        Assert.All(net, p => Assert.True(p.Task is "instruments" or "genre", p.Task));
        Assert.Contains(net, p => p.Task == "instruments" && p.Response.Contains("violin", StringComparison.Ordinal) && p.Response.Contains("cello", StringComparison.Ordinal));

        InstructionPair[] tempo = byClip["tempo-only"].ToArray();
        Assert.All(tempo, p => Assert.True(p.Task is "tempo" or "tempo_feel", p.Task));
        Assert.All(tempo, p => Assert.Contains("94", p.Response, StringComparison.Ordinal));

        Assert.Empty(byClip["nothing"]);
        Assert.Equal(["nothing: no labels to ask about"], result.SkippedClips);
    }

    [Fact]
    public void ShortAnswersAreAskedForAndStateTheBareFact()
    {
        Manifest manifest = SynthManifest(60);
        var byId = manifest.Clips.ToDictionary(c => c.ClipId);
        string[] oneFact = ["tempo", "key", "mode", "meter", "melody_instrument", "genre"];
        InstructionPair[] all = InstructDataset.FromTemplates(manifest, new InstructOptions { Seed = 8, PerClip = 14, ShortAnswerRate = 1 }).Pairs
            .Where(p => p.Conversation is null && oneFact.Contains(p.Task)).ToArray();
        Assert.True(all.Length > 200, $"{all.Length} one-fact pairs");
        foreach (InstructionPair p in all)
        {
            ClipRecord clip = byId[p.ClipId];
            IReadOnlyList<string> cues = p.Task == "tempo" ? Templates.BriefTempoCues : Templates.BriefCues;
            Assert.Contains(cues, c => c.EndsWith(": ", StringComparison.Ordinal)
                ? p.Query.StartsWith(char.ToUpperInvariant(c[0]) + c[1..], StringComparison.Ordinal)
                : p.Query.EndsWith(" " + c, StringComparison.Ordinal));
            Assert.False(InstructionGenerator.IsReserved(p.Query), p.Query);
            switch (p.Task)
            {
                case "tempo":
                    Assert.Equal($"{(int)Math.Round(clip.TempoBpm!.Value)} BPM", p.Response);
                    break;
                case "key":
                    Assert.True(MusicalKey.TryParse(KeyRegex().Match(p.Response).Value, out MusicalKey said), p.Response);
                    Assert.True(MusicalKey.TryParse(clip.Key, out MusicalKey truth));
                    Assert.Equal(truth, said);
                    Assert.Matches(@"^[A-G]\S* (sharp |flat )?(major|minor)$", p.Response);
                    break;
                case "mode":
                    Assert.Equal(clip.Key!.EndsWith("minor", StringComparison.Ordinal) ? "Minor" : "Major", p.Response);
                    break;
                case "meter":
                    Assert.Equal(clip.Meter, p.Response);
                    break;
                case "melody_instrument":
                {
                    string melody = clip.Extra!["melody_instrument"].GetString()!;
                    Assert.Contains(Templates.InstrumentWords[melody], w => string.Equals(Regex.Replace(w, "^an? ", ""), p.Response, StringComparison.OrdinalIgnoreCase));
                    break;
                }
                case "genre":
                    Assert.True(p.Response.Split(' ').Length <= 3 && !p.Response.EndsWith('.'), p.Response);
                    break;
            }
        }
        Assert.Equal(oneFact.Order(), all.Select(p => p.Task).Distinct().Order());

        // Half the one-fact questions ask for brevity at 0.5; the rest, and every other task, keep their sentences.
        InstructionPair[] half = InstructDataset.FromTemplates(manifest, new InstructOptions { Seed = 8, PerClip = 14, ShortAnswerRate = 0.5 }).Pairs
            .Where(p => p.Conversation is null && oneFact.Contains(p.Task)).ToArray();
        double share = half.Count(p => p.Response.Split(' ').Length <= 3 && !p.Response.EndsWith('.')) / (double)half.Length;
        Assert.InRange(share, 0.35, 0.65);
        Assert.Throws<ArgumentOutOfRangeException>(() => InstructionGenerator.ForClip(manifest.Clips[0], 1, shortAnswerRate: 1.5));
    }

    [Fact]
    public void ACorruptManifestLineIsReportedWithItsNumberAndSkipped()
    {
        Manifest manifest = Write(Path.Combine(_dir, "corrupt.jsonl"),
            [JsonLines.Serialize(SynthLike(0)), JsonLines.Serialize(SynthLike(1)), "{\"id\": \"synth_000002\", \"tempo_bpm\": 1", JsonLines.Serialize(SynthLike(3))]);
        InstructResult result = InstructDataset.FromTemplates(manifest, new InstructOptions());
        JsonLineError error = Assert.Single(result.ManifestErrors);
        Assert.Equal(3, error.Line);
        Assert.Equal(["synth_000000", "synth_000001", "synth_000003"], result.Pairs.Select(p => p.ClipId).Distinct());
    }

    [GeneratedRegex(@"\d+(\.\d+)?")]
    private static partial Regex NumberRegex();

    [GeneratedRegex(@"[A-G]((#|b)|(-| )(sharp|flat))? (major|minor)")]
    private static partial Regex KeyRegex();
}
