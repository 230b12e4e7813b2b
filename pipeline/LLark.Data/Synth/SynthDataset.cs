using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace LLark.Data.Synth;

public sealed record SynthOptions
{
    public required string OutDir { get; init; }
    public required int Clips { get; init; }
    public double Seconds { get; init; } = 25;
    public long Seed { get; init; }

    /// <summary>Soundfonts to pick from per clip; empty means <see cref="FluidSynth.DefaultSoundFonts"/>.</summary>
    public IReadOnlyList<string> SoundFonts { get; init; } = [];

    /// <summary>Style names to draw from; empty means every style.</summary>
    public IReadOnlyList<string> Styles { get; init; } = [];

    /// <summary>Clips rendered at once; 0 means one per CPU core.</summary>
    public int Jobs { get; init; }

    /// <summary>FluidSynth's master gain. The output is peak-normalised anyway; this only keeps its float mix in range.</summary>
    public double Gain { get; init; } = 0.4;
}

public sealed record SynthResult(int Rendered, int Skipped, IReadOnlyList<string> Failures, TimeSpan Elapsed, double AudioSeconds);

/// <summary>
/// Makes a dataset of rendered clips with known labels: <c>DIR/audio/*.wav</c> (44.1 kHz mono 16-bit) and
/// <c>DIR/manifest.jsonl</c>. Re-running with the same arguments renders only the clips not yet in the manifest.
/// </summary>
public static class SynthDataset
{
    public const string ManifestFile = "manifest.jsonl";
    public const string SettingsFile = "synth.json";

    /// <summary>The melody is kept between these many dB above the rest of the mix (RMS over the clip).</summary>
    public const double MinMelodyDb = 1, MaxMelodyDb = 9;

    /// <summary>Output peak after normalisation, dBFS.</summary>
    public const double PeakDbfs = -1;

    /// <summary>A clip quieter than this (RMS, after normalisation) is a failed render.</summary>
    public const double MinRmsDbfs = -35;

    private sealed record Settings(
        [property: System.Text.Json.Serialization.JsonPropertyName("seed")] long Seed,
        [property: System.Text.Json.Serialization.JsonPropertyName("seconds")] double Seconds,
        [property: System.Text.Json.Serialization.JsonPropertyName("soundfonts")] IReadOnlyList<string> SoundFonts,
        [property: System.Text.Json.Serialization.JsonPropertyName("styles")] IReadOnlyList<string> Styles);

    public static SynthResult Run(SynthOptions options, Action<string>? log = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Clips < 0) throw new SynthInputException("--clips must be 0 or more");
        if (!(options.Seconds >= 1 && options.Seconds <= 600)) throw new SynthInputException("--seconds must be between 1 and 600");
        string[] soundFonts = (options.SoundFonts.Count > 0 ? options.SoundFonts : FluidSynth.DefaultSoundFonts)
            .Select(FluidSynth.CheckSoundFont).ToArray();
        IReadOnlyList<StyleDefinition> styles;
        try
        {
            styles = options.Styles.Count > 0 ? options.Styles.Select(Synth.Styles.Find).ToArray() : Synth.Styles.All;
        }
        catch (ArgumentException e)
        {
            throw new SynthInputException(e.Message);
        }

        string outDir = Path.GetFullPath(options.OutDir);
        string audioDir = Path.Combine(outDir, "audio"), workDir = Path.Combine(outDir, ".work");
        Directory.CreateDirectory(audioDir);
        Directory.CreateDirectory(workDir);
        CheckSettings(outDir, new Settings(options.Seed, options.Seconds, soundFonts, styles.Select(s => s.Name).ToArray()));

        string manifestPath = Path.Combine(outDir, ManifestFile);
        HashSet<string> done = Resume(manifestPath, log);
        int[] pending = Enumerable.Range(0, options.Clips).Where(i => !done.Contains(SongPlanner.ClipId(i))).ToArray();
        int skipped = options.Clips - pending.Length;
        if (skipped > 0) log?.Invoke($"{skipped} of {options.Clips} clips already rendered; {pending.Length} to go");

        var clock = Stopwatch.StartNew();
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        int finished = 0;
        using (var manifest = new JsonLinesAppender(manifestPath))
        {
            var parallel = new ParallelOptions
            {
                MaxDegreeOfParallelism = options.Jobs > 0 ? options.Jobs : Environment.ProcessorCount,
                CancellationToken = cancel,
            };
            Parallel.ForEach(pending, parallel, index =>
            {
                var one = Stopwatch.StartNew();
                SongSpec spec = SongPlanner.Plan(options.Seed, index, options.Seconds, styles);
                string soundFont = soundFonts[new Random(SongPlanner.Mix(options.Seed, index, 2)).Next(soundFonts.Length)];
                try
                {
                    ClipRecord record = RenderClip(spec, soundFont, options, audioDir, workDir, cancel);
                    manifest.Append(record);
                    int n = Interlocked.Increment(ref finished);
                    log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                        $"[{n + skipped}/{options.Clips}] {spec.Id} {spec.Style.Name}, {spec.Key.Name}, {spec.Bpm} BPM, {spec.Meter}, {spec.Melody.Name} ({Path.GetFileNameWithoutExtension(soundFont)}) {one.Elapsed.TotalSeconds:F1} s"));
                }
                catch (Exception e) when (e is IOException or InvalidDataException or FormatException)
                {
                    failures.Add($"{spec.Id}: {e.Message}");
                    log?.Invoke($"failed {spec.Id}: {e.Message}");
                }
            });
        }
        if (!Directory.EnumerateFileSystemEntries(workDir).Any()) Directory.Delete(workDir);
        return new SynthResult(finished, skipped, [.. failures.Order(StringComparer.Ordinal)], clock.Elapsed, finished * options.Seconds);
    }

    private static void CheckSettings(string outDir, Settings settings)
    {
        string path = Path.Combine(outDir, SettingsFile);
        string json = JsonSerializer.Serialize(settings, JsonLines.Options);
        if (File.Exists(path))
        {
            string existing = File.ReadAllText(path).Trim();
            if (existing != json)
                throw new SynthInputException($"{outDir} was made with other settings ({existing}); re-run with those to resume, or use another --out");
            return;
        }
        File.WriteAllText(path, json + "\n");
    }

    /// <summary>
    /// The clips already done: a manifest line whose audio exists. Lines that are torn or whose audio is gone are dropped
    /// (the manifest is rewritten without them) so that the clip is rendered again and never listed twice.
    /// </summary>
    private static HashSet<string> Resume(string manifestPath, Action<string>? log)
    {
        var done = new HashSet<string>(StringComparer.Ordinal);
        if (!File.Exists(manifestPath)) return done;
        Manifest manifest = Manifest.Load(manifestPath);
        var keep = manifest.Clips.Where(c => File.Exists(manifest.AudioPath(c))).ToList();
        foreach (JsonLineError error in manifest.Errors) log?.Invoke($"dropping {error}");
        if (keep.Count != manifest.Clips.Count || manifest.Errors.Count > 0)
        {
            foreach (ClipRecord lost in manifest.Clips.Except(keep)) log?.Invoke($"dropping {lost.ClipId}: {lost.Audio} is missing");
            JsonLines.Write(manifestPath, keep);
        }
        foreach (ClipRecord clip in keep) done.Add(clip.ClipId);
        return done;
    }

    /// <summary>Composes, renders (melody and accompaniment apart, then mixed) and writes one clip; returns its manifest line.</summary>
    public static ClipRecord RenderClip(SongSpec spec, string soundFont, SynthOptions options, string audioDir, string workDir, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(options);
        Song song = Composer.Compose(spec);
        string stem = Path.Combine(workDir, spec.Id);
        float[] melody, accompaniment;
        try
        {
            song.WriteMidi(stem + ".melody.mid", c => c == Song.MelodyChannel);
            song.WriteMidi(stem + ".accompaniment.mid", c => c != Song.MelodyChannel);
            melody = FluidSynth.Render(stem + ".melody.mid", soundFont, stem + ".melody.wav", options.Gain, cancel);
            accompaniment = FluidSynth.Render(stem + ".accompaniment.mid", soundFont, stem + ".accompaniment.wav", options.Gain, cancel);
        }
        finally
        {
            foreach (string part in new[] { ".melody.mid", ".accompaniment.mid", ".melody.wav", ".accompaniment.wav" })
                File.Delete(stem + part);
        }
        MixResult mix = Mix(melody, accompaniment, (int)Math.Round(spec.Seconds * FluidSynth.SampleRate));
        if (mix.RmsDbfs < MinRmsDbfs)
            throw new InvalidDataException($"render is nearly silent ({mix.RmsDbfs:F1} dBFS RMS) with {Path.GetFileName(soundFont)}");
        string audio = $"audio/{spec.Id}.wav";
        FluidSynth.WriteMono16(Path.Combine(audioDir, spec.Id + ".wav"), mix.Samples);

        var extra = new Dictionary<string, JsonElement>
        {
            ["melody_instrument"] = JsonSerializer.SerializeToElement(spec.Melody.Name),
            ["texture"] = JsonSerializer.SerializeToElement(SongPlanner.TextureName(spec.Texture)),
            ["progression"] = JsonSerializer.SerializeToElement(spec.Progression),
            ["soundfont"] = JsonSerializer.SerializeToElement(Path.GetFileName(soundFont)),
            ["seed"] = JsonSerializer.SerializeToElement(options.Seed),
            ["index"] = JsonSerializer.SerializeToElement(spec.Index),
            ["melody_db"] = JsonSerializer.SerializeToElement(Math.Round(mix.MelodyDb, 2)),
            ["rms_dbfs"] = JsonSerializer.SerializeToElement(Math.Round(mix.RmsDbfs, 2)),
            ["lead_trim_s"] = JsonSerializer.SerializeToElement(Math.Round(mix.LeadSamples / (double)FluidSynth.SampleRate, 4)),
            ["source"] = JsonSerializer.SerializeToElement("synth"),
        };
        return new ClipRecord
        {
            Id = spec.Id,
            Audio = audio,
            Seconds = spec.Seconds,
            TempoBpm = spec.Bpm,
            Key = spec.Key.Name,
            Meter = spec.Meter,
            Instruments = spec.InstrumentNames,
            Chords = song.ChordLabels(mix.LeadSamples / (double)FluidSynth.SampleRate),
            Genre = spec.Style.Genre,
            Style = spec.Style.Name,
            Extra = extra,
        };
    }

    internal sealed record MixResult(float[] Samples, int LeadSamples, double MelodyDb, double RmsDbfs);

    /// <summary>
    /// Sums the stems into <paramref name="length"/> samples: the lead-in before the first sound is cut (so chord times
    /// hold), the melody is set between <see cref="MinMelodyDb"/> and <see cref="MaxMelodyDb"/> above the rest, the end
    /// fades over 20 ms (the music goes on past the cut, so there is no render tail), and the peak is set to -1 dBFS.
    /// </summary>
    internal static MixResult Mix(float[] melody, float[] accompaniment, int length)
    {
        int available = Math.Max(melody.Length, accompaniment.Length);
        float Sample(float[] x, int i) => i < x.Length ? x[i] : 0f;
        float peak = 0;
        for (int i = 0; i < available; i++) peak = Math.Max(peak, Math.Abs(Sample(melody, i) + Sample(accompaniment, i)));
        if (peak <= 0) throw new InvalidDataException("the render is silent");
        int lead = 0;
        while (lead < available && Math.Abs(Sample(melody, lead) + Sample(accompaniment, lead)) < peak * 1e-3f) lead++;
        if (available < lead + length)
            throw new InvalidDataException($"the render has {available} samples, fewer than the {lead + length} the clip needs");
        if (lead > FluidSynth.SampleRate / 10) throw new InvalidDataException($"the render starts with {lead / (double)FluidSynth.SampleRate:F2} s of silence");
        double Rms(float[] x)
        {
            double sum = 0;
            for (int i = lead; i < lead + length; i++) { double v = Sample(x, i); sum += v * v; }
            return Math.Sqrt(sum / length);
        }
        double rm = Rms(melody), ra = Rms(accompaniment);
        if (rm <= 0) throw new InvalidDataException("the melody stem is silent (the soundfont may lack its program)");
        double db = ra > 0 ? 20 * Math.Log10(rm / ra) : MaxMelodyDb;
        double gm = 1, ga = 1;
        if (db < MinMelodyDb) gm = Math.Pow(10, (MinMelodyDb - db) / 20);
        else if (db > MaxMelodyDb) ga = Math.Pow(10, (db - MaxMelodyDb) / 20);
        var mix = new float[length];
        for (int i = 0; i < length; i++) mix[i] = (float)(gm * Sample(melody, lead + i) + ga * Sample(accompaniment, lead + i));
        int fade = Math.Min(length, FluidSynth.SampleRate / 50);
        for (int i = 0; i < fade; i++) mix[length - 1 - i] *= i / (float)fade;
        float mixPeak = mix.Max(Math.Abs);
        if (mixPeak <= 0) throw new InvalidDataException("the mix is silent");
        float scale = (float)(Math.Pow(10, PeakDbfs / 20) / mixPeak);
        double sumSquares = 0;
        for (int i = 0; i < length; i++) { mix[i] *= scale; sumSquares += mix[i] * (double)mix[i]; }
        double rms = 20 * Math.Log10(Math.Sqrt(sumSquares / length) + 1e-12);
        double finalDb = 20 * Math.Log10(gm * rm / (ga * ra + 1e-12));
        return new MixResult(mix, lead, finalDb, rms);
    }
}
