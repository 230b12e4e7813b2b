using System.Buffers.Binary;
using System.Text;
using NAudio.Wave;
using NLayer;
using NVorbis;

namespace LLark.Encoder.Engine.Audio;

/// <summary>
/// Decodes WAV (PCM 8/16/24/32-bit and IEEE float, any channel count and rate), MP3 and Ogg Vorbis, from bytes,
/// recognising the format by its content and never by a file name. FLAC is recognised and refused: no managed
/// FLAC decoder is available to this project, and a half-tested one would be worse than a clear error.
/// </summary>
public static class AudioDecoder
{
    public static DecodedAudio DecodeFile(string path, AudioLimits? limits = null)
    {
        limits ??= new AudioLimits();
        var info = new FileInfo(path);
        if (!info.Exists)
            throw new FileNotFoundException($"audio file not found: {path}", path);
        if (info.Length > limits.MaxBytes)
            throw new AudioDecodeException(AudioDecodeError.TooLarge, $"{path} has {info.Length} bytes, more than the limit of {limits.MaxBytes}");
        return Decode(File.ReadAllBytes(path), limits);
    }

    public static DecodedAudio Decode(byte[] bytes, AudioLimits? limits = null)
    {
        using AudioReader reader = Open(bytes, limits);
        var interleaved = new List<float>();
        ReadOnlySpan<float> frames;
        while ((frames = reader.ReadInterleaved()).Length > 0)
            interleaved.AddRange(frames);
        return Deinterleave(interleaved, reader.Channels, reader.SampleRate, reader.Format);
    }

    /// <summary>
    /// Checks the clip's size, format and shape and opens it for reading chunk by chunk; throws
    /// <see cref="AudioDecodeException"/> for what it refuses.
    /// </summary>
    public static AudioReader Open(byte[] bytes, AudioLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        limits ??= new AudioLimits();
        if (bytes.Length == 0)
            throw new AudioDecodeException(AudioDecodeError.Empty, "the audio is empty (0 bytes)");
        if (bytes.Length > limits.MaxBytes)
            throw new AudioDecodeException(AudioDecodeError.TooLarge, $"the audio has {bytes.Length} bytes, more than the limit of {limits.MaxBytes}");
        AudioFormat format = Sniff(bytes);
        // The reader owns the stream once it is made; until then a refusal disposes it here, after reading how far the
        // codec got (the decoders are made not to close it, so it is still open then).
        var stream = new MemoryStream(bytes, writable: false);
        try
        {
            return format switch
            {
                AudioFormat.Wav => OpenWav(bytes, stream, limits),
                AudioFormat.Mp3 => OpenMp3(stream, limits),
                _ => OpenVorbis(stream, limits),
            };
        }
        catch (AudioDecodeException)
        {
            stream.Dispose();
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            long? at = stream.CanSeek ? stream.Position : null;
            stream.Dispose();
            throw Malformed(format, e, bytes.Length, at);
        }
    }

    /// <summary>
    /// A codec's own failure as a decode error. The libraries underneath do not check every field against the bytes they
    /// have (NLayer's MP3 frames, NAudio's chunk sizes, NVorbis's pages), so damage surfaces as whatever their code hit
    /// (an index out of range, the end of the stream); the caller needs to know where the stream broke, not that message.
    /// </summary>
    internal static AudioDecodeException Malformed(AudioFormat format, Exception e, long length, long? position) =>
        new(AudioDecodeError.Corrupt, format == AudioFormat.Mp3
            ? $"the MP3 stream is corrupt or cut short: a frame near byte {position ?? 0} of {length} could not be decoded"
            : $"the {Name(format)} stream is corrupt or cut short: decoding stopped near byte {position ?? 0} of {length}", e);

    private static string Name(AudioFormat format) => format switch
    {
        AudioFormat.Wav => "WAV",
        AudioFormat.Mp3 => "MP3",
        _ => "Ogg Vorbis",
    };

    /// <summary>Names the format from the first bytes, or refuses with the format it recognised.</summary>
    public static AudioFormat Sniff(ReadOnlySpan<byte> bytes)
    {
        static bool At(ReadOnlySpan<byte> b, int offset, string ascii) =>
            b.Length >= offset + ascii.Length && b.Slice(offset, ascii.Length).SequenceEqual(Encoding.ASCII.GetBytes(ascii));
        if (At(bytes, 0, "RIFF") && At(bytes, 8, "WAVE"))
            return AudioFormat.Wav;
        if (At(bytes, 0, "RIFX") || At(bytes, 0, "RF64"))
            throw Unsupported("big-endian (RIFX) and RF64 WAV files are not supported");
        if (At(bytes, 0, "fLaC"))
            throw Unsupported("FLAC is not supported: convert the clip to WAV, MP3 or Ogg Vorbis");
        if (At(bytes, 0, "OggS"))
        {
            int search = Math.Min(bytes.Length, 512);
            if (bytes[..search].IndexOf("\u0001vorbis"u8) >= 0)
                return AudioFormat.OggVorbis;
            if (bytes[..search].IndexOf("OpusHead"u8) >= 0)
                throw Unsupported("Ogg Opus is not supported (Ogg Vorbis is)");
            if (bytes[..search].IndexOf("\u007fFLAC"u8) >= 0)
                throw Unsupported("FLAC (in Ogg) is not supported");
            throw Unsupported("this Ogg stream holds neither Vorbis nor a known codec");
        }
        if (At(bytes, 0, "ID3") || IsMpegAudioFrame(bytes))
            return AudioFormat.Mp3;
        if (At(bytes, 4, "ftyp"))
            throw Unsupported("MP4/M4A (AAC) audio is not supported");
        if (At(bytes, 0, "FORM") && (At(bytes, 8, "AIFF") || At(bytes, 8, "AIFC")))
            throw Unsupported("AIFF is not supported");
        throw Unsupported("the bytes are not WAV, MP3 or Ogg Vorbis (unknown format)");
    }

    /// <summary>An MPEG-1/2 layer III frame header: sync, a valid bitrate and sample-rate index.</summary>
    private static bool IsMpegAudioFrame(ReadOnlySpan<byte> b) =>
        b.Length >= 4 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0 && (b[1] & 0x06) == 0x02 && (b[2] >> 4) != 0x0F && (b[2] >> 4) != 0 && ((b[2] >> 2) & 3) != 3;

    private static AudioDecodeException Unsupported(string what) => new(AudioDecodeError.Unsupported, what);

    internal static void CheckShape(int channels, int sampleRate, AudioLimits limits, string format)
    {
        if (channels < 1 || channels > limits.MaxChannels)
            throw new AudioDecodeException(AudioDecodeError.Unsupported, $"{format} with {channels} channels is not supported (1 to {limits.MaxChannels})");
        if (sampleRate < limits.MinSampleRate || sampleRate > limits.MaxSampleRate)
            throw new AudioDecodeException(AudioDecodeError.Unsupported,
                $"{format} at {sampleRate} Hz is not supported ({limits.MinSampleRate} to {limits.MaxSampleRate} Hz)");
    }

    internal static long MaxFrames(int sampleRate, AudioLimits limits) => (long)Math.Ceiling(limits.MaxDuration.TotalSeconds * sampleRate);

    internal static AudioDecodeException TooLong(AudioLimits limits) =>
        new(AudioDecodeError.TooLong, $"the audio is longer than the limit of {limits.MaxDuration.TotalSeconds:0.###} s");

    private static AudioReader OpenWav(byte[] bytes, MemoryStream stream, AudioLimits limits)
    {
        if (DataChunk(bytes) is (long start, long size) && start + size > bytes.Length)
            throw new AudioDecodeException(AudioDecodeError.Truncated,
                $"the WAV data chunk declares {size} bytes but the file ends {start + size - bytes.Length} bytes short");
        var reader = new WaveFileReader(stream);
        return Owning(reader, () =>
        {
            WaveFormat format = reader.WaveFormat;
            CheckShape(format.Channels, format.SampleRate, limits, "WAV");
            bool pcm = format.Encoding is WaveFormatEncoding.Pcm && format.BitsPerSample is 8 or 16 or 24 or 32;
            bool ieee = format.Encoding is WaveFormatEncoding.IeeeFloat && format.BitsPerSample is 32 or 64;
            bool extensible = format.Encoding is WaveFormatEncoding.Extensible && format.BitsPerSample is 8 or 16 or 24 or 32;
            if (!pcm && !ieee && !extensible)
                throw Unsupported($"WAV encoding {format.Encoding} with {format.BitsPerSample} bits per sample is not supported (PCM 8/16/24/32-bit or float)");
            if (reader.SampleCount > MaxFrames(format.SampleRate, limits))
                throw TooLong(limits);
            ISampleProvider samples = reader.ToSampleProvider();
            Func<float[], int, int, int> read = ieee && format.BitsPerSample == 64
                ? DoublesFrom(reader)
                : (buffer, offset, count) => samples.Read(buffer.AsSpan(offset, count));
            return new AudioReader(read, format.Channels, format.SampleRate, AudioFormat.Wav, limits, reader, stream) { FramesDeclared = reader.SampleCount };
        });
    }

    /// <summary>64-bit float samples, which NAudio's sample providers do not read, narrowed to float.</summary>
    private static Func<float[], int, int, int> DoublesFrom(WaveFileReader reader)
    {
        byte[] raw = [];
        return (buffer, offset, count) =>
        {
            if (raw.Length < count * 8) raw = new byte[count * 8];
            int got = reader.Read(raw, 0, count * 8) / 8;
            for (int i = 0; i < got; i++)
                buffer[offset + i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(raw.AsSpan(8 * i));
            return got;
        };
    }

    /// <summary>Where the data chunk's samples start and how many bytes it declares; null when there is no data chunk.</summary>
    private static (long Start, long Size)? DataChunk(byte[] bytes)
    {
        long at = 12;
        while (at + 8 <= bytes.Length)
        {
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan((int)at + 4));
            if (Encoding.ASCII.GetString(bytes, (int)at, 4) == "data")
                return (at + 8, size);
            at += 8 + size + (size & 1);
        }
        return null;
    }

    private static AudioReader OpenMp3(MemoryStream stream, AudioLimits limits)
    {
        var mpeg = new MpegFile(stream);
        return Owning(mpeg, () =>
        {
            CheckShape(mpeg.Channels, mpeg.SampleRate, limits, "MP3");
            return new AudioReader(mpeg.ReadSamples, mpeg.Channels, mpeg.SampleRate, AudioFormat.Mp3, limits, mpeg, stream);
        });
    }

    private static AudioReader OpenVorbis(MemoryStream stream, AudioLimits limits)
    {
        var vorbis = new VorbisReader(stream, closeOnDispose: false);
        return Owning(vorbis, () =>
        {
            CheckShape(vorbis.Channels, vorbis.SampleRate, limits, "Ogg Vorbis");
            return new AudioReader(vorbis.ReadSamples, vorbis.Channels, vorbis.SampleRate, AudioFormat.OggVorbis, limits, vorbis, stream);
        });
    }

    /// <summary>The reader <paramref name="open"/> makes, which then owns the decoder; the decoder is disposed if the clip is refused.</summary>
    private static AudioReader Owning(IDisposable decoder, Func<AudioReader> open)
    {
        try
        {
            return open();
        }
        catch
        {
            decoder.Dispose();
            throw;
        }
    }

    private static DecodedAudio Deinterleave(List<float> interleaved, int channels, int sampleRate, AudioFormat format)
    {
        int frames = interleaved.Count / channels;
        var result = new float[channels][];
        for (int c = 0; c < channels; c++)
        {
            var channel = result[c] = new float[frames];
            for (int i = 0; i < frames; i++)
                channel[i] = interleaved[i * channels + c];
        }
        return new DecodedAudio(result, sampleRate, format);
    }
}
