using System.Buffers.Binary;
using System.Text;

namespace LLark.Tests.Encoder.Engine.Audio;

/// <summary>Writes WAV files of any sample format, so tests can make every variant the decoder must read.</summary>
internal static class WavWriter
{
    /// <param name="channels">Per-channel samples in [-1, 1).</param>
    /// <param name="sampleRate">Frames per second.</param>
    /// <param name="format">"pcm8", "pcm16", "pcm24", "pcm32", "float32" or "float64".</param>
    public static byte[] Write(float[][] channels, int sampleRate, string format)
    {
        (byte[] data, ushort tag, int bits) = Data(channels, format);
        return Riff(data, tag, channels.Length, sampleRate, bits);
    }

    /// <summary>The data chunk's bytes of <paramref name="channels"/> in <paramref name="format"/> (as <see cref="Write"/>), its format tag and bits per sample.</summary>
    public static (byte[] Data, ushort Tag, int Bits) Data(float[][] channels, string format)
    {
        (int bits, ushort tag) = format switch
        {
            "pcm8" => (8, (ushort)1),
            "pcm16" => (16, (ushort)1),
            "pcm24" => (24, (ushort)1),
            "pcm32" => (32, (ushort)1),
            "float32" => (32, (ushort)3),
            "float64" => (64, (ushort)3),
            _ => throw new ArgumentException(format, nameof(format)),
        };
        int frames = channels[0].Length, count = channels.Length, bytesPer = bits / 8;
        var data = new byte[frames * count * bytesPer];
        for (int i = 0; i < frames; i++)
        {
            for (int c = 0; c < count; c++)
            {
                Span<byte> at = data.AsSpan((i * count + c) * bytesPer, bytesPer);
                double x = channels[c][i];
                switch (format)
                {
                    case "pcm8": at[0] = (byte)Math.Clamp(Math.Round(x * 128) + 128, 0, 255); break;
                    case "pcm16": BinaryPrimitives.WriteInt16LittleEndian(at, (short)Math.Clamp(Math.Round(x * 32768), short.MinValue, short.MaxValue)); break;
                    case "pcm24":
                        int v24 = (int)Math.Clamp(Math.Round(x * 8388608), -8388608, 8388607);
                        at[0] = (byte)v24; at[1] = (byte)(v24 >> 8); at[2] = (byte)(v24 >> 16);
                        break;
                    case "pcm32": BinaryPrimitives.WriteInt32LittleEndian(at, (int)Math.Clamp(Math.Round(x * 2147483648.0), int.MinValue, int.MaxValue)); break;
                    case "float32": BinaryPrimitives.WriteSingleLittleEndian(at, (float)x); break;
                    default: BinaryPrimitives.WriteDoubleLittleEndian(at, x); break;
                }
            }
        }
        return (data, tag, bits);
    }

    /// <summary>
    /// A fmt chunk's body: 16 bytes, or the 40 of WAVE_FORMAT_EXTENSIBLE (tag 0xFFFE) when <paramref name="subFormat"/>
    /// is given (the sub-format's tag: 1 PCM, 3 float).
    /// </summary>
    public static byte[] Fmt(ushort tag, int channels, int sampleRate, int bits, ushort? subFormat = null)
    {
        using var stream = new MemoryStream();
        using var w = new BinaryWriter(stream);
        int block = channels * bits / 8;
        w.Write(subFormat is null ? tag : (ushort)0xFFFE);
        w.Write((ushort)channels);
        w.Write(sampleRate);
        w.Write(sampleRate * block);
        w.Write((ushort)block);
        w.Write((ushort)bits);
        if (subFormat is { } sub)
        {
            w.Write((ushort)22);
            w.Write((ushort)bits);
            w.Write(0u);
            w.Write(new Guid($"{sub:x8}-0000-0010-8000-00aa00389b71").ToByteArray());
        }
        w.Flush();
        return stream.ToArray();
    }

    /// <summary>"RIFF", its size, "WAVE", then each chunk as given, an odd one followed by a zero pad byte.</summary>
    public static byte[] Chunks(params (string Id, byte[] Body)[] chunks)
    {
        using var stream = new MemoryStream();
        using var w = new BinaryWriter(stream);
        w.Write(Encoding.ASCII.GetBytes("RIFF"));
        w.Write(0);
        w.Write(Encoding.ASCII.GetBytes("WAVE"));
        foreach (var (id, body) in chunks)
        {
            w.Write(Encoding.ASCII.GetBytes(id));
            w.Write(body.Length);
            w.Write(body);
            if (body.Length % 2 == 1) w.Write((byte)0);
        }
        w.Flush();
        byte[] riff = stream.ToArray();
        BinaryPrimitives.WriteInt32LittleEndian(riff.AsSpan(4), riff.Length - 8);
        return riff;
    }

    /// <summary>
    /// A long 8-bit clip made straight into its bytes (a sawtooth a little different in each channel, loudest in its
    /// last second), for clips too long to hold as float channels first.
    /// </summary>
    public static byte[] LongPcm8(int frames, int channels, int sampleRate)
    {
        var data = new byte[(long)frames * channels];
        int loud = Math.Max(0, frames - sampleRate);
        for (long i = 0; i < data.Length; i++)
        {
            long frame = i / channels;
            int amplitude = frame >= loud ? 120 : 60;
            data[i] = (byte)(128 + (int)((frame * (3 + i % channels)) % (2 * amplitude)) - amplitude);
        }
        return Riff(data, 1, channels, sampleRate, 8);
    }

    private static byte[] Riff(byte[] data, ushort tag, int count, int sampleRate, int bits)
    {
        int bytesPer = bits / 8;
        using var stream = new MemoryStream(data.Length + 44);
        using var w = new BinaryWriter(stream);
        w.Write(Encoding.ASCII.GetBytes("RIFF"));
        w.Write(36 + data.Length);
        w.Write(Encoding.ASCII.GetBytes("WAVEfmt "));
        w.Write(16);
        w.Write(tag);
        w.Write((ushort)count);
        w.Write(sampleRate);
        w.Write(sampleRate * count * bytesPer);
        w.Write((ushort)(count * bytesPer));
        w.Write((ushort)bits);
        w.Write(Encoding.ASCII.GetBytes("data"));
        w.Write(data.Length);
        w.Write(data);
        w.Flush();
        return stream.ToArray();
    }

    public static float[] Sine(int frames, int sampleRate, double hz, double amplitude) =>
        Enumerable.Range(0, frames).Select(i => (float)(amplitude * Math.Sin(2 * Math.PI * hz * i / sampleRate))).ToArray();
}
