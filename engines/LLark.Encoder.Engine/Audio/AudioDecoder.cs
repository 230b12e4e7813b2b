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
    private const int ChunkFrames = 1 << 14;

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
        ArgumentNullException.ThrowIfNull(bytes);
        limits ??= new AudioLimits();
        if (bytes.Length == 0)
            throw new AudioDecodeException(AudioDecodeError.Empty, "the audio is empty (0 bytes)");
        if (bytes.Length > limits.MaxBytes)
            throw new AudioDecodeException(AudioDecodeError.TooLarge, $"the audio has {bytes.Length} bytes, more than the limit of {limits.MaxBytes}");
        AudioFormat format = Sniff(bytes);
        try
        {
            return format switch
            {
                AudioFormat.Wav => DecodeWav(bytes, limits),
                AudioFormat.Mp3 => DecodeMp3(bytes, limits),
                _ => DecodeVorbis(bytes, limits),
            };
        }
        catch (AudioDecodeException)
        {
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new AudioDecodeException(AudioDecodeError.Corrupt, $"the {format} audio is malformed: {e.Message}", e);
        }
    }

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

    private static void CheckShape(int channels, int sampleRate, AudioLimits limits, string format)
    {
        if (channels < 1 || channels > limits.MaxChannels)
            throw new AudioDecodeException(AudioDecodeError.Unsupported, $"{format} with {channels} channels is not supported (1 to {limits.MaxChannels})");
        if (sampleRate < limits.MinSampleRate || sampleRate > limits.MaxSampleRate)
            throw new AudioDecodeException(AudioDecodeError.Unsupported,
                $"{format} at {sampleRate} Hz is not supported ({limits.MinSampleRate} to {limits.MaxSampleRate} Hz)");
    }

    private static long MaxFrames(int sampleRate, AudioLimits limits) => (long)Math.Ceiling(limits.MaxDuration.TotalSeconds * sampleRate);

    private static AudioDecodeException TooLong(AudioLimits limits) =>
        new(AudioDecodeError.TooLong, $"the audio is longer than the limit of {limits.MaxDuration.TotalSeconds:0.###} s");

    private static DecodedAudio DecodeWav(byte[] bytes, AudioLimits limits)
    {
        if (DataChunk(bytes) is (long start, long size) && start + size > bytes.Length)
            throw new AudioDecodeException(AudioDecodeError.Truncated,
                $"the WAV data chunk declares {size} bytes but the file ends {start + size - bytes.Length} bytes short");
        using var stream = new MemoryStream(bytes, writable: false);
        using var reader = new WaveFileReader(stream);
        WaveFormat format = reader.WaveFormat;
        CheckShape(format.Channels, format.SampleRate, limits, "WAV");
        bool pcm = format.Encoding is WaveFormatEncoding.Pcm && format.BitsPerSample is 8 or 16 or 24 or 32;
        bool ieee = format.Encoding is WaveFormatEncoding.IeeeFloat && format.BitsPerSample is 32 or 64;
        bool extensible = format.Encoding is WaveFormatEncoding.Extensible && format.BitsPerSample is 8 or 16 or 24 or 32;
        if (!pcm && !ieee && !extensible)
            throw Unsupported($"WAV encoding {format.Encoding} with {format.BitsPerSample} bits per sample is not supported (PCM 8/16/24/32-bit or float)");
        if (reader.SampleCount > MaxFrames(format.SampleRate, limits))
            throw TooLong(limits);

        int channels = format.Channels;
        if (ieee && format.BitsPerSample == 64)
            return Deinterleave(ReadDoubles(reader), channels, format.SampleRate, AudioFormat.Wav);
        ISampleProvider samples = reader.ToSampleProvider();
        var interleaved = new List<float>(checked((int)Math.Min(reader.SampleCount * channels, int.MaxValue / 2)));
        var buffer = new float[ChunkFrames * channels];
        int read;
        while ((read = samples.Read(buffer)) > 0)
            interleaved.AddRange(buffer.AsSpan(0, read));
        return Deinterleave(interleaved.ToArray(), channels, format.SampleRate, AudioFormat.Wav);
    }

    private static float[] ReadDoubles(WaveFileReader reader)
    {
        var raw = new byte[reader.Length];
        int got = reader.Read(raw, 0, raw.Length);
        var samples = new float[got / 8];
        for (int i = 0; i < samples.Length; i++)
            samples[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(raw.AsSpan(8 * i));
        return samples;
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

    private static DecodedAudio DecodeMp3(byte[] bytes, AudioLimits limits)
    {
        using var stream = new MemoryStream(bytes, writable: false);
        using var mpeg = new MpegFile(stream);
        CheckShape(mpeg.Channels, mpeg.SampleRate, limits, "MP3");
        return ReadAll((buffer, count) => mpeg.ReadSamples(buffer, 0, count), mpeg.Channels, mpeg.SampleRate, limits, AudioFormat.Mp3);
    }

    private static DecodedAudio DecodeVorbis(byte[] bytes, AudioLimits limits)
    {
        using var stream = new MemoryStream(bytes, writable: false);
        using var vorbis = new VorbisReader(stream, closeOnDispose: false);
        CheckShape(vorbis.Channels, vorbis.SampleRate, limits, "Ogg Vorbis");
        return ReadAll((buffer, count) => vorbis.ReadSamples(buffer, 0, count), vorbis.Channels, vorbis.SampleRate, limits, AudioFormat.OggVorbis);
    }

    private static DecodedAudio ReadAll(Func<float[], int, int> read, int channels, int sampleRate, AudioLimits limits, AudioFormat format)
    {
        long maxSamples = MaxFrames(sampleRate, limits) * channels;
        var buffer = new float[ChunkFrames * channels];
        var interleaved = new List<float>();
        int got;
        while ((got = read(buffer, buffer.Length)) > 0)
        {
            interleaved.AddRange(buffer.AsSpan(0, got));
            if (interleaved.Count > maxSamples)
                throw TooLong(limits);
        }
        return Deinterleave(interleaved.ToArray(), channels, sampleRate, format);
    }

    private static DecodedAudio Deinterleave(float[] interleaved, int channels, int sampleRate, AudioFormat format)
    {
        int frames = interleaved.Length / channels;
        // Every path ends here, so this is where "no audio" is caught: an empty data chunk, no valid frames, or fewer
        // samples than one frame (2 bytes of stereo PCM16) that read as samples but make no frame.
        if (frames == 0)
            throw new AudioDecodeException(AudioDecodeError.Empty, $"the {format} audio holds no whole frame of samples");
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
