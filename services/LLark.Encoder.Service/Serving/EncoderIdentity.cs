using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using LLark.Encoder.Engine.Model;

namespace LLark.Encoder.Service.Serving;

/// <summary>
/// Everything about the loaded encoder that changes an embedding, and the content address derived from it:
/// <c>embedding id = hex(SHA-256(tag, model id, config, blocks, fps, dtype, path, rate, context, n, samples))</c>.
/// </summary>
public sealed class EncoderIdentity
{
    private const string HashTag = "llark.encoder.v1/embedding-id";
    private readonly byte[] prefix;

    public EncoderIdentity(JukeboxEncoderConfig config, string? modelName, double fps, string dtype, ExtractionPath path)
    {
        ArgumentNullException.ThrowIfNull(config);
        Config = config;
        Fps = fps;
        DType = dtype;
        Path = path;
        EffectiveFps = config.TokensPerSecond / Pooling.Window(config.TokensPerSecond, fps);
        // The config without its block count: the same weights shape whatever depth is run.
        string shapeJson = (config with { Layers = JukeboxEncoderConfig.Preset5b.Layers }).ToJson();
        string name = modelName ?? (shapeJson == JukeboxEncoderConfig.Preset5b.ToJson()
            ? "jukebox-5b"
            : "jukebox-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(shapeJson)))[..8]);
        ModelId = string.Create(CultureInfo.InvariantCulture, $"{name}/blocks{config.Layers}/fps{fps:0.###}/{dtype}")
            + (path == ExtractionPath.Jukemirlib ? "/jukemirlib" : "");

        var header = new StringBuilder()
            .Append(HashTag).Append('\n')
            .Append(ModelId).Append('\n')
            .Append(config.ToJson()).Append('\n')
            .Append(CultureInfo.InvariantCulture, $"blocks={config.Layers} fps={BitConverter.DoubleToInt64Bits(fps):x16} dtype={dtype} path={path} ")
            .Append(CultureInfo.InvariantCulture, $"rate={config.Prior.SampleRate} context={config.ContextSamples}\n");
        prefix = Encoding.UTF8.GetBytes(header.ToString());
    }

    public JukeboxEncoderConfig Config { get; }

    /// <summary>E.g. "jukebox-5b/blocks36/fps25/fp32"; "/jukemirlib" is appended on that path.</summary>
    public string ModelId { get; }

    public double Fps { get; }

    /// <summary>344.53125 / floor(344.53125 / fps): 26.5 for the nominal 25.</summary>
    public double EffectiveFps { get; }

    public string DType { get; }

    public ExtractionPath Path { get; }

    /// <summary>Samples per second the encoder takes (44,100).</summary>
    public int SampleRate => Config.Prior.SampleRate;

    /// <summary>Samples the encoder sees at once; longer clips are cut, shorter ones padded with zeros (padded path).</summary>
    public int ContextSamples => Config.ContextSamples;

    /// <summary>
    /// The id of <paramref name="samples"/>, the clip as the encoder is fed it (mono, 44.1 kHz, peak-normalised, cut to
    /// the context; the zero padding follows from the count and the config, both hashed). -0 hashes as +0.
    /// </summary>
    public string EmbeddingId(ReadOnlySpan<float> samples)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(prefix);
        Span<byte> count = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(count, samples.Length);
        hash.AppendData(count);
        var buffer = new float[Math.Min(samples.Length, 1 << 14)];
        for (int at = 0; at < samples.Length; at += buffer.Length)
        {
            int n = Math.Min(buffer.Length, samples.Length - at);
            for (int i = 0; i < n; i++)
            {
                float x = samples[at + i] + 0f;
                buffer[i] = BitConverter.IsLittleEndian ? x : BitConverter.Int32BitsToSingle(BinaryPrimitives.ReverseEndianness(BitConverter.SingleToInt32Bits(x)));
            }
            hash.AppendData(MemoryMarshal.AsBytes(buffer.AsSpan(0, n)));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>True for strings this service could have issued: 64 lowercase hex digits (also keeps ids safe as file names).</summary>
    public static bool IsWellFormed(string id) => id.Length == 64 && id.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'f'));
}
