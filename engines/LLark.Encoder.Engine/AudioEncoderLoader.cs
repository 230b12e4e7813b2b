using LLark.Checkpoints;
using LLark.Encoder.Engine.Model;
using LLark.Encoder.Engine.Spectral;
using static TorchSharp.torch;

namespace LLark.Encoder.Engine;

/// <summary>The settings that choose how an encoder folder runs; each family reads the ones it has.</summary>
public sealed record AudioEncoderOptions
{
    /// <summary>Frames per second of the output; LLark's design uses 25.</summary>
    public double Fps { get; init; } = 25;

    /// <summary>Jukebox: prior blocks to run; null keeps the folder's config.</summary>
    public int? Layers { get; init; }

    /// <summary>Jukebox: the type its transformer matrices run in (float32 or bfloat16).</summary>
    public ScalarType MatrixType { get; init; } = ScalarType.Float32;

    /// <summary>Where the model runs; the CPU by default.</summary>
    public Device? Device { get; init; }

    /// <summary>Jukebox: how clips meet the prior's fixed context.</summary>
    public ExtractionPath Path { get; init; } = ExtractionPath.LLarkPadded;

    /// <summary>The encoder's name in ids; null lets the family name it from its shape.</summary>
    public string? ModelName { get; init; }

    /// <summary>Clips worth encoding in one call, where the family batches.</summary>
    public int BatchSize { get; init; } = 1;
}

/// <summary>
/// Opens an encoder folder as the family it holds: <see cref="SpectralEncoderConfig.FileName"/> makes it the spectral
/// family (no weights), anything else is read as Jukebox (a <c>convert-jukebox</c> folder or the original checkpoints).
/// </summary>
public static class AudioEncoderLoader
{
    public static IAudioEncoder Load(string folder, AudioEncoderOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        string spectral = System.IO.Path.Combine(folder, SpectralEncoderConfig.FileName);
        if (File.Exists(spectral))
        {
            // The frame rate is the caller's (the checkpoint's or the service's setting); the rest is the folder's.
            SpectralEncoderConfig config = SpectralEncoderConfig.FromJson(File.ReadAllText(spectral)) with { Fps = options.Fps };
            return new SpectralEncoder(config);
        }
        JukeboxEncoder jukebox = JukeboxEncoderLoader.Load(folder,
            new JukeboxLoadOptions { Layers = options.Layers, MatrixType = options.MatrixType, Device = options.Device }, ct);
        try
        {
            return new JukeboxAudioEncoder(jukebox, options.Fps, RunTimeDTypes.ShortName(options.MatrixType), options.Path, options.ModelName,
                options.BatchSize);
        }
        catch
        {
            jukebox.Dispose();
            throw;
        }
    }
}
