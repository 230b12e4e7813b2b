using LLark.Data.Synth;

namespace LLark.Tests.Data;

/// <summary>The composed notes keep the promises the labels make, over many seeds (no rendering).</summary>
public sealed class ComposerTests
{
    private static IEnumerable<Song> Songs(int count, double seconds = 12) =>
        Enumerable.Range(0, count).Select(i => Composer.Compose(SongPlanner.Plan(42, i, seconds)));

    [Fact]
    public void PlansCoverEveryKeyModeMeterAndStyle()
    {
        SongSpec[] specs = Enumerable.Range(0, 600).Select(i => SongPlanner.Plan(42, i, 10)).ToArray();
        Assert.Equal(24, specs.Select(s => s.Key).Distinct().Count());
        Assert.Equal([3, 4], specs.Select(s => s.BeatsPerBar).Distinct().Order());
        Assert.Equal(Styles.All.Count, specs.Select(s => s.Style.Name).Distinct().Count());
        Assert.Equal(4, specs.Select(s => s.Texture).Distinct().Count());
        Assert.True(specs.Select(s => s.Melody.Program).Distinct().Count() >= 25);
        Assert.Contains(specs, s => !s.Drums);
        Assert.All(specs, s => Assert.InRange(s.Bpm, 60, 180));
        Assert.Equal(SongPlanner.Plan(42, 17, 10), specs[17]);
        Assert.NotEqual(SongPlanner.Plan(43, 17, 10), specs[17]);
    }

    [Fact]
    public void MelodyStaysInTheScaleAndStartsAndEndsOnTheTonic()
    {
        foreach (Song song in Songs(200))
        {
            MusicalKey key = song.Spec.Key;
            Note[] melody = song.Notes.Where(n => n.Channel == Song.MelodyChannel).OrderBy(n => n.Tick).ToArray();
            Assert.All(melody, n => Assert.Contains(n.Pitch % 12, key.ScalePitchClasses));
            Assert.All(melody, n => Assert.InRange(n.Pitch, song.Spec.Melody.Low, song.Spec.Melody.High));
            Assert.Equal(key.Tonic, melody[0].Pitch % 12);
            Assert.Equal(0, melody[0].Tick);
            Assert.Equal(key.Tonic, melody[^1].Pitch % 12);
            Assert.True((melody[^1].Tick + melody[^1].Duration) * song.SecondsPerTick > song.Spec.Seconds, "the last note rings to the end");
            Assert.All(song.Notes.Where(n => n.Channel is Song.HarmonyChannel or Song.BassChannel),
                n => Assert.Contains(n.Pitch % 12, key.ScalePitchClasses));
        }
    }

    [Fact]
    public void ChordLabelsStartAndEndOnTheTonicAndCoverTheClip()
    {
        foreach (Song song in Songs(200))
        {
            string tonic = Roman.Progression(song.Spec.Key.Mode == Mode.Major ? "I" : "i", song.Spec.Key)[0].Symbol(song.Spec.Key);
            IReadOnlyList<LLark.Data.TimedChord> labels = song.ChordLabels();
            Assert.StartsWith(tonic, labels[0].Chord, StringComparison.Ordinal);
            Assert.StartsWith(tonic, labels[^1].Chord, StringComparison.Ordinal);
            Assert.True(song.TotalSeconds > song.Spec.Seconds + song.BarSeconds * 0.99, "one bar past the end, so the cut has no tail");
            Assert.All(labels, c => Assert.True(Math.Abs(c.Time / song.BarSeconds - Math.Round(c.Time / song.BarSeconds)) < 1e-3, "changes fall on barlines"));
        }
    }

    [Fact]
    public void DrumsMarkEveryBeatAndBassEveryDownbeat()
    {
        foreach (Song song in Songs(200).Where(s => s.Spec.Drums))
        {
            var drumTicks = song.Notes.Where(n => n.Channel == Song.DrumChannel).Select(n => n.Tick).ToHashSet();
            for (long beat = 0; beat < song.TotalTicks; beat += Song.TicksPerBeat)
                Assert.Contains(beat, drumTicks);
        }
        foreach (Song song in Songs(200).Where(s => s.Spec.Bass is not null))
        {
            var bassTicks = song.Notes.Where(n => n.Channel == Song.BassChannel).Select(n => n.Tick).ToHashSet();
            for (long bar = 0; bar < song.TotalTicks; bar += song.Spec.BeatsPerBar * Song.TicksPerBeat)
                Assert.Contains(bar, bassTicks);
        }
    }

    [Fact]
    public void MidiFileCarriesTheTempoAndOnlyTheChosenChannels()
    {
        Song song = Composer.Compose(SongPlanner.Plan(7, 3, 8));
        string path = Path.Combine(Path.GetTempPath(), $"llark-{Guid.NewGuid():N}.mid");
        try
        {
            song.WriteMidi(path, c => c == Song.MelodyChannel);
            var file = new NAudio.Midi.MidiFile(path, strictChecking: true);
            var tempo = file.Events[0].OfType<NAudio.Midi.TempoEvent>().Single();
            Assert.Equal(song.Spec.Bpm, tempo.Tempo, 1);
            var channels = file.Events.SelectMany(t => t).OfType<NAudio.Midi.NoteOnEvent>().Select(e => e.Channel).Distinct();
            Assert.Equal(1, Assert.Single(channels));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("F# minor", 6, Mode.Minor)]
    [InlineData("F-sharp minor", 6, Mode.Minor)]
    [InlineData("Eb major", 3, Mode.Major)]
    [InlineData("E flat major", 3, Mode.Major)]
    [InlineData("Gb major", 6, Mode.Major)]
    [InlineData("B minor", 11, Mode.Minor)]
    public void KeysParseTheWaysPeopleWriteThem(string text, int tonic, Mode mode)
    {
        Assert.True(MusicalKey.TryParse(text, out MusicalKey key));
        Assert.Equal(new MusicalKey(tonic, mode), key);
    }

    [Fact]
    public void ChordsAreSpelledForTheKey()
    {
        var fSharpMinor = new MusicalKey(6, Mode.Minor);
        Assert.Equal("F#m C#7 Bm D", string.Join(' ', Roman.Progression("i V7 iv VI", fSharpMinor).Select(c => c.Symbol(fSharpMinor))));
        var bFlat = new MusicalKey(10, Mode.Major);
        Assert.Equal("Bbmaj7 Gm7 Cm7 F7 Adim", string.Join(' ', Roman.Progression("Imaj7 vi7 ii7 V7 vii°", bFlat).Select(c => c.Symbol(bFlat))));
    }
}
