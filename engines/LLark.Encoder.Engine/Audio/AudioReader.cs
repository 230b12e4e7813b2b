using System.Buffers;
using NAudio.Wave;

namespace LLark.Encoder.Engine.Audio;

/// <summary>
/// An opened clip read chunk by chunk, so that a caller that needs only its mono mix, or only part of it, never holds
/// every channel of the whole clip at once (a 66 MB 8-bit WAV is 264 MB of floats per copy). Open one with
/// <see cref="AudioDecoder.Open"/>; reading enforces <see cref="AudioLimits.MaxDuration"/> and refuses a clip with no
/// samples, as <see cref="AudioDecoder.Decode"/> does.
/// </summary>
public sealed class AudioReader : IDisposable
{
    /// <summary>Frames asked of the codec per read.</summary>
    public const int ChunkFrames = 1 << 14;

    private readonly Func<float[], int, int, int> read;
    private readonly IDisposable[] owned;
    private readonly long maxFrames;
    private readonly AudioLimits limits;
    // From the shared pool, given back when the reader is disposed: stereo and wider it is a large-object-heap array,
    // which every clip would otherwise leave behind until a full collection.
    private float[] interleaved;
    private readonly int length;
    private bool disposed;
    // A read may end inside a frame; its samples are kept for the next read so that channels never shift.
    private int carryFrom;
    private int carry;

    internal AudioReader(Func<float[], int, int, int> read, int channels, int sampleRate, AudioFormat format, AudioLimits limits, params IDisposable[] owned)
    {
        this.read = read;
        this.owned = owned;
        this.limits = limits;
        Channels = channels;
        SampleRate = sampleRate;
        Format = format;
        maxFrames = AudioDecoder.MaxFrames(sampleRate, limits);
        length = ChunkFrames * channels;
        interleaved = ArrayPool<float>.Shared.Rent(length);
    }

    public int Channels { get; }

    public int SampleRate { get; }

    public AudioFormat Format { get; }

    /// <summary>Frames the container declares, 0 when it declares none: for sizing buffers only, since a stream may not hold what it declares.</summary>
    public long FramesDeclared { get; internal init; }

    /// <summary>
    /// Samples the next read asks of the codec: the reader keeps a frame's tail from one read to the next, so the
    /// count depends on what came before. An upload decoded as it arrives waits until it holds the bytes for them.
    /// </summary>
    internal int NextReadSamples => length - carry;

    /// <summary>Whole frames read so far; after the end, the clip's length.</summary>
    public long FramesRead { get; private set; }

    /// <summary>
    /// The next frames, interleaved, in a buffer reused by the next read; empty at the end. Throws
    /// <see cref="AudioDecodeException"/> for malformed audio, a clip past the duration limit, or one with no frames.
    /// </summary>
    public ReadOnlySpan<float> ReadInterleaved()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        while (true)
        {
            if (carry > 0) Array.Copy(interleaved, carryFrom, interleaved, 0, carry);
            int have = carry;
            int got = Decoding(() => read(interleaved, have, length - have));
            if (got <= 0)
            {
                carry = 0;
                if (FramesRead == 0)
                {
                    throw new AudioDecodeException(AudioDecodeError.Empty, Format == AudioFormat.Wav
                        ? "the WAV file holds no samples"
                        : $"the {Format} stream decodes to no audio (no valid frames)");
                }
                return [];
            }
            int total = have + got, frames = total / Channels;
            RefuseNonFinite(have, total);
            carryFrom = frames * Channels;
            carry = total - carryFrom;
            FramesRead += frames;
            if (FramesRead > maxFrames) throw AudioDecoder.TooLong(limits);
            if (frames > 0) return interleaved.AsSpan(0, frames * Channels);
        }
    }

    /// <summary>
    /// Reads up to <paramref name="mono"/>.Length frames, each the mean of its channels exactly as
    /// <see cref="AudioDsp.Downmix"/> takes it; 0 at the end.
    /// </summary>
    public int ReadMono(Span<float> mono)
    {
        if (mono.Length < ChunkFrames) throw new ArgumentException($"room for {ChunkFrames} frames is needed", nameof(mono));
        ReadOnlySpan<float> frames = ReadInterleaved();
        int count = frames.Length / Channels;
        if (Channels == 1)
        {
            frames.CopyTo(mono);
            return count;
        }
        for (int i = 0; i < count; i++)
        {
            double sum = 0;
            for (int c = 0; c < Channels; c++)
                sum += frames[i * Channels + c];
            mono[i] = (float)(sum / Channels);
        }
        return count;
    }

    private T Decoding<T>(Func<T> step)
    {
        try
        {
            return step();
        }
        catch (Exception e) when (e is not AudioDecodeException and not OutOfMemoryException)
        {
            Stream? source = owned.OfType<Stream>().FirstOrDefault();
            throw AudioDecoder.Malformed(Format, e, source?.Length ?? 0, source?.Position);
        }
    }

    /// <summary>
    /// A float WAV can hold NaN or infinite samples; the DSP would turn them into finite but meaningless features, so
    /// the clip is refused instead of answered. Checks the samples read into [from, to) of the buffer.
    /// </summary>
    private void RefuseNonFinite(int from, int to)
    {
        for (int i = from; i < to; i++)
        {
            float x = interleaved[i];
            if (float.IsFinite(x)) continue;
            long frame = FramesRead + i / Channels;
            throw new AudioDecodeException(AudioDecodeError.Corrupt,
                $"the {Format} audio holds a {(float.IsNaN(x) ? "NaN" : "infinite")} sample (channel {i % Channels}, sample {frame}); samples must be finite numbers");
        }
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (IDisposable d in owned) d.Dispose();
        ArrayPool<float>.Shared.Return(interleaved);
        interleaved = [];
    }
}
