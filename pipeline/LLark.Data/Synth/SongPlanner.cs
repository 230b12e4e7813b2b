namespace LLark.Data.Synth;

/// <summary>Draws a clip's <see cref="SongSpec"/> from the dataset seed and the clip's index, the same on every machine.</summary>
public static class SongPlanner
{
    public const int MinBpm = 60, MaxBpm = 180;

    /// <summary>A 32-bit seed from a dataset seed and an index (SplitMix64), stable across runs and platforms.</summary>
    public static int Mix(long seed, long index, long salt = 0)
    {
        ulong z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)index * 0xBF58476D1CE4E5B9UL + (ulong)salt * 0x94D049BB133111EBUL + 0x632BE59BD9B4E019UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (int)(z & 0x7FFFFFFF);
    }

    public static string ClipId(int index) => $"synth_{index:D6}";

    public static SongSpec Plan(long seed, int index, double seconds, IReadOnlyList<StyleDefinition>? styles = null)
    {
        styles ??= Styles.All;
        if (styles.Count == 0) throw new ArgumentException("no styles to choose from", nameof(styles));
        var rng = new Random(Mix(seed, index));
        StyleDefinition style = styles[rng.Next(styles.Count)];
        var key = new MusicalKey(rng.Next(12), rng.NextDouble() < style.MinorProbability ? Mode.Minor : Mode.Major);
        int bpm = Math.Clamp(rng.Next(style.MinBpm, style.MaxBpm + 1), MinBpm, MaxBpm);
        int beats = style.Beats[rng.Next(style.Beats.Count)];
        Texture texture = style.Textures[rng.Next(style.Textures.Count)];
        GmInstrument melody = style.Melody[rng.Next(style.Melody.Count)];
        GmInstrument[] harmonyChoices = style.Harmony.Where(h => h.Program != melody.Program).ToArray();
        GmInstrument harmony = harmonyChoices[rng.Next(harmonyChoices.Length)];
        bool drums = style.Drums != DrumPattern.None && rng.NextDouble() < style.DrumsProbability;
        // Styles that may go without drums may also go without bass (a solo with accompaniment), never both missing
        // the pulse when the texture is sparse.
        bool bass = style.BassPattern != BassPattern.None && (style.DrumsProbability >= 1 || rng.NextDouble() < 0.8 || texture == Texture.Sparse);
        IReadOnlyList<string> progressions = key.Mode == Mode.Major ? style.MajorProgressions : style.MinorProgressions;
        return new SongSpec
        {
            Id = ClipId(index),
            Index = index,
            Style = style,
            Key = key,
            Bpm = bpm,
            BeatsPerBar = beats,
            Texture = texture,
            Melody = melody,
            Harmony = harmony,
            Bass = bass ? style.Bass[rng.Next(style.Bass.Count)] : null,
            Drums = drums,
            Progression = progressions[rng.Next(progressions.Count)],
            Seconds = seconds,
            NoteSeed = Mix(seed, index, 1),
        };
    }

    public static string TextureName(Texture texture) => texture switch
    {
        Texture.BlockChords => "block chords",
        Texture.Arpeggios => "arpeggios",
        Texture.Syncopated => "syncopated",
        _ => "sparse",
    };
}
