using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using LLark.Encoder.Engine.Model;

namespace LLark.Encoder.Engine;

/// <summary>
/// The Jukebox family behind the seam: a loaded <see cref="JukeboxEncoder"/> with the settings that change its frames
/// (frame rate, extraction path, dtype). Owns the encoder.
/// </summary>
public sealed class JukeboxAudioEncoder : IAudioEncoder
{
    private readonly EmbedOptions options;

    /// <param name="encoder">The loaded model (owned from here on).</param>
    /// <param name="fps">Frames per second after pooling.</param>
    /// <param name="dtype">The run-time dtype's short name ("fp32", "bf16"): it changes the values, so it is part of the identity.</param>
    /// <param name="path">How clips meet the prior's fixed context.</param>
    /// <param name="modelName">The name in ids; null names the 5b shape "jukebox-5b" and any other "jukebox-&lt;hash of its shape&gt;".</param>
    /// <param name="preferredBatchSize">Clips per forward pass on the padded path (the jukemirlib path runs one at a time).</param>
    public JukeboxAudioEncoder(JukeboxEncoder encoder, double fps, string dtype, ExtractionPath path = ExtractionPath.LLarkPadded,
        string? modelName = null, int preferredBatchSize = 1)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentOutOfRangeException.ThrowIfLessThan(preferredBatchSize, 1);
        Model = encoder;
        JukeboxEncoderConfig config = encoder.Config;
        if (!(fps > 0) || fps > config.TokensPerSecond)
            throw new EncoderConfigException(string.Create(CultureInfo.InvariantCulture,
                $"frames at {fps} fps: the encoder makes {config.TokensPerSecond:0.###} tokens a second, and a frame pools whole tokens"));
        Fps = fps;
        EffectiveFps = config.TokensPerSecond / Pooling.Window(config.TokensPerSecond, fps);
        options = new EmbedOptions { Path = path, Fps = fps };
        PreferredBatchSize = path == ExtractionPath.LLarkPadded ? preferredBatchSize : 1;

        // The config without its block count: the same weights' shape whatever depth is run.
        string shapeJson = (config with { Layers = JukeboxEncoderConfig.Preset5b.Layers }).ToJson();
        string name = modelName ?? (shapeJson == JukeboxEncoderConfig.Preset5b.ToJson()
            ? "jukebox-5b"
            : "jukebox-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(shapeJson)))[..8]);
        ModelId = string.Create(CultureInfo.InvariantCulture, $"{name}/blocks{config.Layers}/fps{fps:0.###}/{dtype}")
            + (path == ExtractionPath.Jukemirlib ? "/jukemirlib" : "");
        Configuration = config.ToJson() + "\n" + string.Create(CultureInfo.InvariantCulture,
            $"blocks={config.Layers} fps={BitConverter.DoubleToInt64Bits(fps):x16} dtype={dtype} path={path} rate={config.Prior.SampleRate} context={config.ContextSamples}");
    }

    private JukeboxEncoder Model { get; }

    public string Family => "jukebox";

    /// <summary>E.g. "jukebox-5b/blocks36/fps25/fp32"; "/jukemirlib" is appended on that path.</summary>
    public string ModelId { get; }

    public string Configuration { get; }

    public int SampleRate => Model.Config.Prior.SampleRate;

    /// <summary>Samples the prior sees at once; longer clips are cut, shorter ones padded with zeros on the padded path.</summary>
    public int ContextSamples => Model.Config.ContextSamples;

    public double Fps { get; }

    /// <summary>344.53125 / floor(344.53125 / fps): 26.5 for the nominal 25.</summary>
    public double EffectiveFps { get; }

    public int Width => Model.Config.Prior.Width;

    public int Layer => Model.Config.Layers;

    public int PreferredBatchSize { get; }

    public string? TooShort(long samples) => Pooling.TooShortForOneFrame(samples, Model.Config, Fps);

    public IReadOnlyList<AudioEmbedding> EmbedBatch(IReadOnlyList<float[]> clips, CancellationToken ct = default) =>
        Model.EmbedBatch(clips, options, ct);

    public void Dispose() => Model.Dispose();
}
