namespace LLark.Encoder.Service.Caching;

/// <summary>
/// One embedding as every tier keeps it: float32 frames, row-major, plus what the response reports. Immutable: the
/// array is never handed out writable, so an entry evicted from memory stays whole for whoever still reads it.
/// </summary>
public sealed class StoredEmbedding
{
    private readonly float[] values;

    public StoredEmbedding(string id, float[] values, int frames, int width, double fps, double effectiveFps, string modelId, double audioSeconds)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (frames < 1 || width < 1 || (long)frames * width != values.Length)
            throw new ArgumentException($"{values.Length} values are not {frames} frames of width {width}", nameof(values));
        Id = id;
        this.values = values;
        Frames = frames;
        Width = width;
        Fps = fps;
        EffectiveFps = effectiveFps;
        ModelId = modelId;
        AudioSeconds = audioSeconds;
    }

    public string Id { get; }

    public ReadOnlySpan<float> Values => values;

    public int Frames { get; }

    public int Width { get; }

    /// <summary>Nominal frame rate (the setting).</summary>
    public double Fps { get; }

    /// <summary>Actual frames per second of audio.</summary>
    public double EffectiveFps { get; }

    public string ModelId { get; }

    /// <summary>Seconds of audio encoded (after cutting to the context).</summary>
    public double AudioSeconds { get; }

    /// <summary>What the entry costs in memory: the frames plus a small allowance for the object and strings.</summary>
    public long Bytes => values.LongLength * sizeof(float) + 256;

    /// <summary>Frames <paramref name="first"/> .. first + count - 1.</summary>
    public ReadOnlySpan<float> Rows(int first, int count) => values.AsSpan(first * Width, count * Width);
}
