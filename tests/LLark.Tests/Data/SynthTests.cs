using System.Globalization;
using LLark.Data;
using LLark.Data.Synth;

namespace LLark.Tests.Data;

/// <summary>A small rendered dataset shared by the tests that only read it (six 4-second clips, seed 11).</summary>
public sealed class SynthFixture : IDisposable
{
    public const int Clips = 6;
    public const double Seconds = 4;
    public const long Seed = 11;

    public SynthFixture()
    {
        Dir = Path.Combine(Path.GetTempPath(), "llark-synth-" + Guid.NewGuid().ToString("N"));
        Result = SynthDataset.Run(new SynthOptions { OutDir = Dir, Clips = Clips, Seconds = Seconds, Seed = Seed });
        Manifest = Manifest.Load(Path.Combine(Dir, SynthDataset.ManifestFile));
    }

    public string Dir { get; }
    public SynthResult Result { get; }
    public Manifest Manifest { get; }

    public void Dispose() => Directory.Delete(Dir, recursive: true);
}

public sealed class SynthTests(SynthFixture fixture, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<SynthFixture>, IDisposable
{
    private readonly string _scratch = Path.Combine(Path.GetTempPath(), "llark-synth-t-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_scratch)) Directory.Delete(_scratch, recursive: true);
    }

    [Fact]
    public void EveryClipIsRenderedWithValidManifestFields()
    {
        Assert.Empty(fixture.Result.Failures);
        Assert.Empty(fixture.Manifest.Errors);
        Assert.Equal(SynthFixture.Clips, fixture.Manifest.Clips.Count);
        foreach (ClipRecord clip in fixture.Manifest.Clips)
        {
            Assert.Matches("^synth_[0-9]{6}$", clip.Id);
            Assert.Equal($"audio/{clip.Id}.wav", clip.Audio);
            Assert.Equal(SynthFixture.Seconds, clip.Seconds);
            Assert.InRange(clip.TempoBpm!.Value, 60, 180);
            Assert.True(MusicalKey.TryParse(clip.Key, out MusicalKey key), clip.Key);
            Assert.Equal(key.Name, clip.Key);
            Assert.True(clip.Meter is "3/4" or "4/4", clip.Meter);
            Assert.NotEmpty(clip.Instruments!);
            Assert.Equal(clip.Extra!["melody_instrument"].GetString(), clip.Instruments![0]);
            Assert.Contains(clip.Style, Styles.All.Select(s => s.Name));
            Assert.Equal(Styles.Find(clip.Style!).Genre, clip.Genre);
            Assert.True(clip.Extra["soundfont"].GetString() is "FluidR3_GM.sf2" or "TimGM6mb.sf2");
            Assert.Equal(SynthFixture.Seed, clip.Extra["seed"].GetInt64());
            // Chords: from the start, increasing, within the clip, opening on the tonic chord.
            Assert.Equal(0, clip.Chords![0].Time);
            Assert.StartsWith(key.PitchName(key.Tonic) + (key.Mode == Mode.Minor ? "m" : ""), clip.Chords[0].Chord, StringComparison.Ordinal);
            Assert.True(clip.Chords.Zip(clip.Chords.Skip(1)).All(p => p.First.Time < p.Second.Time && p.First.Chord != p.Second.Chord));
            Assert.All(clip.Chords, c => Assert.InRange(c.Time, 0, SynthFixture.Seconds));
            Assert.InRange(clip.Extra["melody_db"].GetDouble(), SynthDataset.MinMelodyDb - 0.01, SynthDataset.MaxMelodyDb + 0.01);
        }
    }

    [Fact]
    public void AudioIsTheLabelledLengthAtFullScaleButNeitherSilentNorClipped()
    {
        foreach (ClipRecord clip in fixture.Manifest.Clips)
        {
            string path = fixture.Manifest.AudioPath(clip);
            using (var reader = new NAudio.Wave.WaveFileReader(path))
            {
                Assert.Equal(44100, reader.WaveFormat.SampleRate);
                Assert.Equal(1, reader.WaveFormat.Channels);
                Assert.Equal(16, reader.WaveFormat.BitsPerSample);
            }
            float[] samples = FluidSynth.ReadMono(path);
            Assert.Equal((int)Math.Round(clip.Seconds!.Value * 44100), samples.Length);
            double peak = samples.Max(Math.Abs);
            Assert.InRange(peak, 0.88, 0.90); // -1 dBFS
            double rms = Math.Sqrt(samples.Average(s => (double)s * s));
            Assert.True(20 * Math.Log10(rms) > -30, $"{clip.Id}: RMS {20 * Math.Log10(rms):F1} dBFS");
            // Sound from the first 50 ms (no lead-in silence) and in every second of the clip.
            Assert.True(samples.Take(2205).Max(Math.Abs) > 0.01, $"{clip.Id} starts silent");
            for (int s = 0; s + 44100 <= samples.Length; s += 44100)
                Assert.True(samples.Skip(s).Take(44100).Max(Math.Abs) > 0.05, $"{clip.Id}: second {s / 44100} is silent");
        }
    }

    [Fact]
    public void KeyLabelAgreesWithTheChromaOfTheAudio()
    {
        var problems = new List<string>();
        int profileMisses = 0;
        foreach (ClipRecord clip in fixture.Manifest.Clips)
        {
            Assert.True(MusicalKey.TryParse(clip.Key, out MusicalKey key));
            double[] chroma = AudioProbe.Chroma(FluidSynth.ReadMono(fixture.Manifest.AudioPath(clip)), 44100);
            double Share(MusicalKey k) => k.ScalePitchClasses.Sum(pc => chroma[pc]);
            double inScale = Share(key);
            // The same mode a semitone up or down shares only two or three pitch classes with the label: it must hold
            // clearly less of the energy. (Keys a fifth away, the relative and, on a clip that is mostly the tonic
            // chord, the parallel key share too much with the label for the scale alone to tell them apart.)
            MusicalKey rival = new[] { key with { Tonic = (key.Tonic + 1) % 12 }, key with { Tonic = (key.Tonic + 11) % 12 } }.MaxBy(Share);
            (int tonic, bool minor, double[,] r) = AudioProbe.BestKey(chroma);
            var estimate = new MusicalKey(tonic, minor ? Mode.Minor : Mode.Major);
            double labelled = r[key.Tonic, key.Mode == Mode.Minor ? 1 : 0], best = r[tonic, minor ? 1 : 0];
            string line = string.Create(CultureInfo.InvariantCulture,
                $"{clip.Id} {clip.Key} ({clip.Style}, {string.Join(", ", clip.Instruments!)}): {inScale:P1} on the scale ({rival.Name}: {Share(rival):P1}); " +
                $"profile r={labelled:F3}, best {estimate.Name} r={best:F3}, MIREX {Related(key, estimate):F1}");
            output.WriteLine(line);
            if (inScale < MinScaleShare || Share(rival) > inScale - 0.15) problems.Add(line);
            if (Related(key, estimate) < 0.2) profileMisses++;
        }
        Assert.Empty(problems);
        // The Krumhansl-Kessler profile is an estimator, swayed by timbre (a clarinet's strong odd partials lift the
        // third and fifth above each note) and by short clips: its best key must be the label or a key the MIREX score
        // credits (a fifth, the relative or the parallel) on all clips but one. Measured on 36 clips of 8 s (seed 77):
        // 35 credited, 23 exact; every one of the 36 had at least 82 % of its chroma on the labelled scale.
        Assert.True(profileMisses <= 1, $"{profileMisses} clips whose profile key is unrelated to the label");
    }

    /// <summary>MIREX key score of <paramref name="estimate"/> against <paramref name="truth"/> (fifths counted either way).</summary>
    internal static double Related(MusicalKey truth, MusicalKey estimate)
    {
        if (truth == estimate) return 1;
        if (truth.Mode == estimate.Mode && (estimate.Tonic - truth.Tonic + 12) % 12 is 7 or 5) return 0.5;
        int relative = truth.Mode == Mode.Major ? (truth.Tonic + 9) % 12 : (truth.Tonic + 3) % 12;
        if (truth.Mode != estimate.Mode && estimate.Tonic == relative) return 0.3;
        return truth.Mode != estimate.Mode && estimate.Tonic == truth.Tonic ? 0.2 : 0;
    }

    /// <summary>The share of chroma energy on the labelled scale that a clip must reach; chance is 7/12 to 8/12.</summary>
    private const double MinScaleShare = 0.75;

    [Fact]
    public void TempoLabelAgreesWithTheOnsetPeriodicityOfDrumClips()
    {
        SynthResult result = SynthDataset.Run(new SynthOptions { OutDir = _scratch, Clips = 3, Seconds = 6, Seed = 5, Styles = ["rock", "electronic", "pop"] });
        Assert.Empty(result.Failures);
        Manifest manifest = Manifest.Load(Path.Combine(_scratch, SynthDataset.ManifestFile));
        Assert.Equal(3, manifest.Clips.Count);
        foreach (ClipRecord clip in manifest.Clips)
        {
            Assert.Contains(Gm.DrumsName, clip.Instruments!);
            double tempo = AudioProbe.Tempo(FluidSynth.ReadMono(manifest.AudioPath(clip)), 44100);
            double label = clip.TempoBpm!.Value;
            // ACC2: within 4% of the label or of its double or half.
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{clip.Id} {clip.Style}: labelled {label} BPM, onsets {tempo:F2} BPM"));
            bool agrees = new[] { 0.5, 1, 2 }.Any(f => Math.Abs(tempo - label * f) <= 0.04 * label * f);
            Assert.True(agrees, string.Create(CultureInfo.InvariantCulture, $"{clip.Id}: labelled {label} BPM, onsets say {tempo:F1}"));
        }
    }

    [Fact]
    public void TheSameSeedRendersTheSameClips()
    {
        SynthDataset.Run(new SynthOptions { OutDir = _scratch, Clips = 2, Seconds = SynthFixture.Seconds, Seed = SynthFixture.Seed, Jobs = 1 });
        Manifest again = Manifest.Load(Path.Combine(_scratch, SynthDataset.ManifestFile));
        foreach (ClipRecord clip in again.Clips)
        {
            ClipRecord original = fixture.Manifest.Clips.Single(c => c.Id == clip.Id);
            Assert.Equal(JsonLines.Serialize(original), JsonLines.Serialize(clip));
            Assert.Equal(File.ReadAllBytes(fixture.Manifest.AudioPath(original)), File.ReadAllBytes(again.AudioPath(clip)));
        }
        Assert.Equal(2, again.Clips.Count);
    }

    [Fact]
    public void ARerunSkipsRenderedClipsAndRedoesTornOrMissingOnes()
    {
        var options = new SynthOptions { OutDir = _scratch, Clips = 2, Seconds = 2, Seed = 3, Styles = ["folk"] };
        Assert.Equal(2, SynthDataset.Run(options).Rendered);
        string manifestPath = Path.Combine(_scratch, SynthDataset.ManifestFile);
        string first = Path.Combine(_scratch, "audio", "synth_000000.wav");
        DateTime written = File.GetLastWriteTimeUtc(first);

        SynthResult more = SynthDataset.Run(options with { Clips = 3 });
        Assert.Equal((1, 2), (more.Rendered, more.Skipped));
        Assert.Equal(written, File.GetLastWriteTimeUtc(first));

        // A crash mid-line and a lost audio file: both clips are rendered again, the manifest ends up whole.
        File.AppendAllText(manifestPath, "{\"id\":\"synth_0000");
        File.Delete(Path.Combine(_scratch, "audio", "synth_000001.wav"));
        SynthResult repaired = SynthDataset.Run(options with { Clips = 3 });
        Assert.Equal((1, 2), (repaired.Rendered, repaired.Skipped));
        Manifest manifest = Manifest.Load(manifestPath);
        Assert.Empty(manifest.Errors);
        Assert.Equal(["synth_000000", "synth_000001", "synth_000002"], manifest.Clips.Select(c => c.ClipId).Order(StringComparer.Ordinal));
        Assert.Equal(0, SynthDataset.Run(options with { Clips = 3 }).Rendered);
    }

    [Fact]
    public void OtherSettingsInTheSameFolderAreRefused()
    {
        SynthDataset.Run(new SynthOptions { OutDir = _scratch, Clips = 0, Seconds = 2, Seed = 1 });
        var e = Assert.Throws<SynthInputException>(() => SynthDataset.Run(new SynthOptions { OutDir = _scratch, Clips = 1, Seconds = 2, Seed = 2 }));
        Assert.Contains("other settings", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ABadSoundFontIsAClearError()
    {
        string missing = Path.Combine(_scratch, "nope.sf2");
        var e = Assert.Throws<SynthInputException>(() => SynthDataset.Run(new SynthOptions { OutDir = _scratch, Clips = 1, SoundFonts = [missing] }));
        Assert.Equal($"soundfont not found: {missing}", e.Message);
        Directory.CreateDirectory(_scratch);
        string text = Path.Combine(_scratch, "text.sf2");
        File.WriteAllText(text, "this is not a soundfont at all");
        e = Assert.Throws<SynthInputException>(() => SynthDataset.Run(new SynthOptions { OutDir = _scratch, Clips = 1, SoundFonts = [text] }));
        Assert.Contains("is not a SoundFont 2 file", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MixingLiftsAQuietMelodyAndNormalisesThePeak()
    {
        const int n = 44100;
        float[] melody = Enumerable.Range(0, n + 100).Select(i => 0.01f * MathF.Sin(i * 0.05f)).ToArray();
        float[] accompaniment = Enumerable.Range(0, n + 100).Select(i => 0.5f * MathF.Sin(i * 0.011f)).ToArray();
        SynthDataset.MixResult mix = SynthDataset.Mix(melody, accompaniment, n);
        Assert.Equal(n, mix.Samples.Length);
        Assert.Equal(SynthDataset.MinMelodyDb, mix.MelodyDb, 2);
        Assert.Equal(Math.Pow(10, -1 / 20.0), mix.Samples.Max(Math.Abs), 3);
        Assert.Throws<InvalidDataException>(() => SynthDataset.Mix(new float[n], accompaniment, n));
    }
}
