namespace LLark.Encoder.Engine.Model;

/// <summary>
/// The label vector of the top prior: <c>[total_length, offset, sample_length, artist, genre × max_bow_genre_size]</c>,
/// lengths in samples, empty genre slots −1.
/// </summary>
public sealed record ConditioningLabels
{
    /// <summary>Length of the whole song in samples; Jukebox's range is [min_duration, max_duration) seconds.</summary>
    public required long TotalLengthSamples { get; init; }

    /// <summary>Where the window starts in the song, in samples.</summary>
    public long OffsetSamples { get; init; }

    /// <summary>Artist id; 0 is "unknown".</summary>
    public int ArtistId { get; init; }

    /// <summary>Bag-of-words genre ids; 0 is "unknown". Padded with −1 (masked out) to max_bow_genre_size.</summary>
    public IReadOnlyList<int> GenreIds { get; init; } = [0];

    /// <summary>
    /// What jukemirlib and LLark extract with: artist and genre unknown, offset 0, and a total length of 62 s
    /// rounded down to a whole number of codes.
    /// </summary>
    public static ConditioningLabels ForExtraction(JukeboxEncoderConfig config, double totalSeconds = 62.0)
    {
        int hop = config.Vqvae.HopLength;
        return new ConditioningLabels { TotalLengthSamples = (long)Math.Floor(totalSeconds * config.Prior.SampleRate / hop) * hop };
    }
}

/// <summary>The time-conditioning bins of every position, as Jukebox's label conditioner computes them.</summary>
public sealed record ConditioningBins(int TotalLength, int[] AbsolutePosition, int[] RelativePosition, int ArtistId, int[] GenreIds, bool[] GenreMask);

/// <summary>
/// Bin arithmetic of Jukebox's <c>RangeEmbedding</c>, in float32 and in its order of operations, so every bin
/// lands exactly where the original puts it: a value p in [lo, hi) falls in bin floor(t_bins · (p − lo) / (hi − lo)),
/// and positions interpolate start + (end − start) · i / n_time.
/// </summary>
public static class ConditioningMath
{
    public static ConditioningBins Bins(PriorConfig prior, ConditioningLabels labels, long sampleLength, int nTime)
    {
        ArgumentNullException.ThrowIfNull(prior);
        ArgumentNullException.ThrowIfNull(labels);
        double sr = prior.SampleRate;
        double minLength = prior.MinDuration * sr, maxLength = prior.MaxDuration * sr;
        if (labels.TotalLengthSamples < minLength || labels.TotalLengthSamples >= maxLength)
            throw new ArgumentOutOfRangeException(nameof(labels),
                $"total length {labels.TotalLengthSamples} samples is outside the prior's range [{minLength}, {maxLength})");
        if (labels.OffsetSamples < 0 || labels.OffsetSamples >= maxLength)
            throw new ArgumentOutOfRangeException(nameof(labels), $"offset {labels.OffsetSamples} samples is outside [0, {maxLength})");
        if (labels.ArtistId < 0 || labels.ArtistId >= prior.ArtistBins)
            throw new ArgumentOutOfRangeException(nameof(labels), $"artist id {labels.ArtistId} is outside [0, {prior.ArtistBins})");
        if (labels.GenreIds.Count > prior.MaxBowGenreSize || labels.GenreIds.Any(g => g >= prior.GenreBins))
            throw new ArgumentOutOfRangeException(nameof(labels), $"at most {prior.MaxBowGenreSize} genre ids below {prior.GenreBins} are allowed");

        float total = labels.TotalLengthSamples;
        float start = labels.OffsetSamples;
        float end = labels.OffsetSamples + sampleLength;
        int totalBin = Bin(total, (float)minLength, (float)(maxLength - minLength), prior.TBins);

        var absolute = new int[nTime];
        var relative = new int[nTime];
        float relStart = start / total;
        float relEnd = Math.Clamp(end / total, 0f, 1f);
        for (int i = 0; i < nTime; i++)
        {
            float interpolation = i / (float)nTime;
            absolute[i] = Bin(start + (end - start) * interpolation, 0f, (float)maxLength, prior.TBins);
            relative[i] = Bin(relStart + (relEnd - relStart) * interpolation, 0f, 1f, prior.TBins);
        }

        var genres = Enumerable.Range(0, prior.MaxBowGenreSize).Select(j => j < labels.GenreIds.Count ? labels.GenreIds[j] : -1).ToArray();
        return new ConditioningBins(totalBin, absolute, relative, labels.ArtistId,
            genres.Select(g => Math.Max(g, 0)).ToArray(), genres.Select(g => g >= 0).ToArray());
    }

    private static int Bin(float position, float low, float span, int bins)
    {
        float normalised = (position - low) / span;
        int bin = (int)MathF.Floor(bins * normalised);
        return Math.Clamp(bin, 0, bins - 1);
    }
}
