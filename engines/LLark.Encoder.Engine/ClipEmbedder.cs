using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Engine.Model;

namespace LLark.Encoder.Engine;

/// <summary>A clip that decodes but cannot be embedded (too short for one frame); the message says why.</summary>
public sealed class UnusableClipException(string message) : Exception(message);

/// <summary>A clip as the encoder is fed it (mono, at its rate, peak-normalised, cut to its context) and its content address.</summary>
public sealed record PreparedClip(PreparedAudio Audio, string EmbeddingId)
{
    public float[] Samples => Audio.Samples;

    /// <summary>Seconds of audio the encoder sees.</summary>
    public double Seconds => Audio.Samples.Length / (double)Audio.SampleRate;
}

/// <summary>A clip's frames with everything that says what they are: <see cref="Frames"/> rows of <see cref="Width"/> values.</summary>
public sealed record ClipFrames(string EmbeddingId, float[] Values, int Frames, int Width, double Fps, double EffectiveFps, string EncoderId,
    int Layer, double AudioSeconds);

/// <summary>
/// Embedding a clip, the one way every caller does it (the encoder service, <c>llark data embed</c>, in-process
/// LLark): decode and prepare the audio for the encoder, refuse a clip too short for one frame, compute the content
/// address, encode. The address is
/// <c>hex(SHA-256(tag, model id, configuration, sample count, samples))</c>: the clip as the encoder is fed it and
/// every setting that changes its frames, so two encoders or two configurations never share an id.
/// </summary>
public sealed class ClipEmbedder
{
    private const string HashTag = "llark.encoder.v1/embedding-id";
    private readonly byte[] prefix;

    public ClipEmbedder(IAudioEncoder encoder)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        Encoder = encoder;
        prefix = Encoding.UTF8.GetBytes(HashTag + "\n" + encoder.ModelId + "\n" + encoder.Configuration + "\n");
    }

    public IAudioEncoder Encoder { get; }

    /// <summary>
    /// Decodes and prepares a clip and computes its id. Throws <see cref="AudioDecodeException"/> for bytes that are not
    /// a clip within <paramref name="limits"/>, <see cref="UnusableClipException"/> for one too short for a frame.
    /// </summary>
    public PreparedClip Prepare(byte[] audio, AudioLimits? limits = null) =>
        Prepare(AudioFrontEnd.Prepare(audio, Encoder.SampleRate, Encoder.ContextSamples, limits));

    /// <summary>
    /// A clip that arrives in pieces, decoded as they come where the format allows: append them, then hand
    /// <see cref="AudioUpload.Complete"/>'s result to <see cref="Prepare(PreparedAudio)"/>. The same bytes give the same
    /// samples, so the same id, as <see cref="Prepare(byte[], AudioLimits?)"/>.
    /// </summary>
    /// <param name="limits">Bounds on the decoding work.</param>
    /// <param name="sizeHint">The size the sender announced, if any.</param>
    public AudioUpload StartUpload(AudioLimits? limits = null, long sizeHint = 0) => new(Encoder.SampleRate, Encoder.ContextSamples, limits, sizeHint);

    /// <summary>A clip prepared for this encoder, with its id; throws <see cref="UnusableClipException"/> for one too short for a frame.</summary>
    public PreparedClip Prepare(PreparedAudio prepared)
    {
        ArgumentNullException.ThrowIfNull(prepared);
        if (prepared.SampleRate != Encoder.SampleRate)
            throw new ArgumentException($"the clip was prepared at {prepared.SampleRate} Hz, not this encoder's {Encoder.SampleRate}", nameof(prepared));
        if (Encoder.TooShort(prepared.Samples.Length) is { } problem) throw new UnusableClipException(problem);
        return new PreparedClip(prepared, EmbeddingId(prepared.Samples));
    }

    /// <summary>The frames the encoder made of a prepared clip, with their identity.</summary>
    public ClipFrames Describe(PreparedClip clip, AudioEmbedding embedding)
    {
        ArgumentNullException.ThrowIfNull(clip);
        ArgumentNullException.ThrowIfNull(embedding);
        return new ClipFrames(clip.EmbeddingId, embedding.Values, embedding.Frames, embedding.Width, Encoder.Fps, embedding.FramesPerSecond,
            Encoder.ModelId, Encoder.Layer, clip.Seconds);
    }

    /// <summary>Encodes prepared clips in one call of the encoder.</summary>
    public IReadOnlyList<ClipFrames> Embed(IReadOnlyList<PreparedClip> clips, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(clips);
        IReadOnlyList<AudioEmbedding> embeddings = Encoder.EmbedBatch([.. clips.Select(c => c.Samples)], ct);
        return [.. clips.Select((c, i) => Describe(c, embeddings[i]))];
    }

    /// <summary>Decodes, prepares and encodes one clip.</summary>
    public ClipFrames Embed(byte[] audio, AudioLimits? limits = null, CancellationToken ct = default) => Embed([Prepare(audio, limits)], ct)[0];

    /// <summary>The id of <paramref name="samples"/>, the clip as the encoder is fed it. -0 hashes as +0.</summary>
    public string EmbeddingId(ReadOnlySpan<float> samples)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(prefix);
        Span<byte> count = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(count, samples.Length);
        hash.AppendData(count);
        Span<float> buffer = stackalloc float[1024];
        for (int at = 0; at < samples.Length; at += buffer.Length)
        {
            int n = Math.Min(buffer.Length, samples.Length - at);
            for (int i = 0; i < n; i++)
            {
                float x = samples[at + i] + 0f;
                buffer[i] = BitConverter.IsLittleEndian ? x : BitConverter.Int32BitsToSingle(BinaryPrimitives.ReverseEndianness(BitConverter.SingleToInt32Bits(x)));
            }
            hash.AppendData(MemoryMarshal.AsBytes(buffer[..n]));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>True for strings that could be ids: 64 lowercase hex digits (which also keeps them safe as file names).</summary>
    public static bool IsWellFormedId(string id) => id.Length == 64 && id.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'f'));
}
