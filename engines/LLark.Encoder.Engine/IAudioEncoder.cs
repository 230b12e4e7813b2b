using LLark.Encoder.Engine.Model;

namespace LLark.Encoder.Engine;

/// <summary>
/// An encoder family's seam: decoded audio (mono, <see cref="SampleRate"/>, peak-normalised, at most
/// <see cref="ContextSamples"/>) in; frames at a rate and a width out. Jukebox is one family; a family with no learned
/// weights is another. One instance owns its model; calls must not overlap.
/// </summary>
public interface IAudioEncoder : IDisposable
{
    /// <summary>The family's name ("jukebox", "spectral"): the first part of <see cref="ModelId"/>.</summary>
    string Family { get; }

    /// <summary>A short readable id of this configuration, stored with every embedding and recorded by checkpoints
    /// trained on it (<c>mm_audio_encoder</c>), e.g. "jukebox-5b/blocks36/fps25/fp32".</summary>
    string ModelId { get; }

    /// <summary>Every setting that changes the frames, as text. It is hashed into the embedding id, so two families
    /// or two configurations never share a cache entry.</summary>
    string Configuration { get; }

    /// <summary>Samples per second the encoder takes.</summary>
    int SampleRate { get; }

    /// <summary>The longest clip the encoder sees, in samples; longer input is cut to it.</summary>
    int ContextSamples { get; }

    /// <summary>The frame rate asked for (LLark's nominal 25).</summary>
    double Fps { get; }

    /// <summary>The rate the frames really have (Jukebox pools whole windows: 26.5 for the nominal 25).</summary>
    double EffectiveFps { get; }

    /// <summary>Values per frame.</summary>
    int Width { get; }

    /// <summary>The depth the frames are read at, recorded with them (Jukebox: prior blocks run); 0 for a family
    /// without layers.</summary>
    int Layer { get; }

    /// <summary>Why a clip of <paramref name="samples"/> samples gives no frame, or null when it gives one.</summary>
    string? TooShort(long samples);

    /// <summary>The frames of each clip, in order. Clips that are not too short; each at most <see cref="ContextSamples"/>.</summary>
    IReadOnlyList<AudioEmbedding> EmbedBatch(IReadOnlyList<float[]> clips, CancellationToken ct = default);

    /// <summary>Clips worth batching into one call (1 where batching gains nothing).</summary>
    int PreferredBatchSize { get; }
}
