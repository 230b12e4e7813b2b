using LLark.Encoder.Engine.Audio;

namespace LLark.Tests.Encoder.Engine.Audio;

/// <summary>Every WAV variant, MP3 and Ogg Vorbis decode; everything else fails with the reason named.</summary>
public sealed class AudioDecoderTests
{
    [Theory]
    [InlineData("pcm8", 1, 8000, 1e-2)]
    [InlineData("pcm16", 2, 44100, 1e-4)]
    [InlineData("pcm24", 3, 48000, 1e-6)]
    [InlineData("pcm32", 1, 96000, 1e-8)]
    [InlineData("float32", 2, 22050, 0)]
    [InlineData("float64", 6, 16000, 1e-7)]
    public void EveryWavSampleFormatDecodes(string format, int channels, int rate, double tolerance)
    {
        float[][] signal = Enumerable.Range(0, channels).Select(c => WavWriter.Sine(rate / 10, rate, 220 * (c + 1), 0.5)).ToArray();
        DecodedAudio decoded = AudioDecoder.Decode(WavWriter.Write(signal, rate, format));
        Assert.Equal((AudioFormat.Wav, rate, channels, rate / 10), (decoded.Format, decoded.SampleRate, decoded.Channels.Length, decoded.Frames));
        for (int c = 0; c < channels; c++)
            Assert.True(signal[c].Zip(decoded.Channels[c], (a, b) => Math.Abs(a - b)).Max() <= tolerance + 1e-9, $"channel {c}");
    }

    [Fact]
    public void TheFixtureClipDecodesAsTheReferencesReadIt()
    {
        DecodedAudio decoded = AudioDecoder.DecodeFile(JukeboxTiny.File("test_audio_4s.wav"));
        Assert.Equal((44100, 1, 176400), (decoded.SampleRate, decoded.Channels.Length, decoded.Frames));
        float[] normalized = AudioDsp.Downmix(decoded.Channels);
        AudioDsp.PeakNormalise(normalized);
        Assert.Equal(JukeboxTiny.NormalizedAudio(), normalized);
    }

    [Fact]
    public void EmptyInputIsRefused() =>
        Assert.Equal(AudioDecodeError.Empty, Assert.Throws<AudioDecodeException>(() => AudioDecoder.Decode([])).Reason);

    [Fact]
    public void ATruncatedWavIsRefused()
    {
        byte[] wav = WavWriter.Write([WavWriter.Sine(4410, 44100, 440, 0.5)], 44100, "pcm16");
        var e = Assert.Throws<AudioDecodeException>(() => AudioDecoder.Decode(wav[..(wav.Length / 2)]));
        Assert.Equal(AudioDecodeError.Truncated, e.Reason);
    }

    [Fact]
    public void AWavWithAMangledHeaderIsCorrupt()
    {
        byte[] wav = WavWriter.Write([WavWriter.Sine(441, 44100, 440, 0.5)], 44100, "pcm16");
        wav.AsSpan(12, 4).Fill((byte)'x');
        var e = Assert.Throws<AudioDecodeException>(() => AudioDecoder.Decode(wav));
        Assert.Equal(AudioDecodeError.Corrupt, e.Reason);
    }

    [Theory]
    [InlineData("fLaC\0\0\0\"", "FLAC")]
    [InlineData("RIFX\0\0\0\0WAVE", "RIFX")]
    [InlineData("\0\0\0\u0018ftypM4A ", "MP4")]
    [InlineData("hello, world, this is text", "unknown")]
    public void UnsupportedFormatsAreNamed(string head, string named)
    {
        var e = Assert.Throws<AudioDecodeException>(() => AudioDecoder.Decode(System.Text.Encoding.Latin1.GetBytes(head.PadRight(64, '\0'))));
        Assert.Equal(AudioDecodeError.Unsupported, e.Reason);
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LimitsOnBytesAndDurationHold()
    {
        byte[] wav = WavWriter.Write([WavWriter.Sine(44100, 44100, 440, 0.5)], 44100, "pcm16");
        Assert.Equal(AudioDecodeError.TooLarge,
            Assert.Throws<AudioDecodeException>(() => AudioDecoder.Decode(wav, new AudioLimits { MaxBytes = 1000 })).Reason);
        Assert.Equal(AudioDecodeError.TooLong,
            Assert.Throws<AudioDecodeException>(() => AudioDecoder.Decode(wav, new AudioLimits { MaxDuration = TimeSpan.FromSeconds(0.5) })).Reason);
    }

    [Fact]
    public void AnAbsurdChannelCountIsRefused()
    {
        byte[] wav = WavWriter.Write(Enumerable.Range(0, 40).Select(_ => new float[10]).ToArray(), 44100, "pcm16");
        Assert.Equal(AudioDecodeError.Unsupported, Assert.Throws<AudioDecodeException>(() => AudioDecoder.Decode(wav)).Reason);
    }
}

/// <summary>The compressed fixtures of tests/fixtures/audio-formats: MP3 and Ogg Vorbis decode, FLAC is refused by name.</summary>
public sealed class CompressedFormatTests
{
    private static byte[] Clip(string extension) =>
        File.ReadAllBytes(TestSupport.RepoPaths.Fixture("audio-formats", $"tone_440_660_stereo.{extension}"));

    /// <summary>Magnitude of frequency <paramref name="hz"/> in x, per sample.</summary>
    private static double Level(float[] x, int rate, double hz)
    {
        double re = 0, im = 0;
        for (int i = 0; i < x.Length; i++)
        {
            re += x[i] * Math.Cos(2 * Math.PI * hz * i / rate);
            im += x[i] * Math.Sin(2 * Math.PI * hz * i / rate);
        }
        return 2 * Math.Sqrt(re * re + im * im) / x.Length;
    }

    [Theory]
    [InlineData("mp3", AudioFormat.Mp3)]
    [InlineData("ogg", AudioFormat.OggVorbis)]
    public void TheClipDecodesWithItsToneInEachChannel(string extension, AudioFormat format)
    {
        DecodedAudio decoded = AudioDecoder.Decode(Clip(extension));
        Assert.Equal((format, 44100, 2), (decoded.Format, decoded.SampleRate, decoded.Channels.Length));
        Assert.InRange(decoded.Frames, 44100, 44100 + 4096);
        double amplitude = 16000 / 32768.0;
        Assert.InRange(Level(decoded.Channels[0], 44100, 440), 0.8 * amplitude, 1.1 * amplitude);
        Assert.InRange(Level(decoded.Channels[1], 44100, 660), 0.8 * amplitude, 1.1 * amplitude);
        Assert.True(Level(decoded.Channels[0], 44100, 660) < 0.05 * amplitude);
    }

    [Fact]
    public void FlacIsRefusedByName()
    {
        var e = Assert.Throws<AudioDecodeException>(() => AudioDecoder.Decode(Clip("flac")));
        Assert.Equal(AudioDecodeError.Unsupported, e.Reason);
        Assert.Contains("FLAC", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("mp3")]
    [InlineData("ogg")]
    public void TruncatedOrDamagedClipsFailCleanlyOrDecodeWhatIsThere(string extension)
    {
        byte[] clip = Clip(extension);
        byte[] damaged = (byte[])clip.Clone();
        new Random(3).NextBytes(damaged.AsSpan(200, damaged.Length - 200));
        foreach (byte[] bytes in new[] { clip[..(clip.Length / 3)], damaged, clip[..64] })
        {
            try
            {
                DecodedAudio decoded = AudioDecoder.Decode(bytes);
                Assert.True(decoded.Frames < 44100 + 4096);
                Assert.All(decoded.Channels, c => Assert.All(c, x => Assert.True(float.IsFinite(x))));
            }
            catch (AudioDecodeException e)
            {
                Assert.NotEqual(AudioDecodeError.TooLong, e.Reason);
            }
        }
    }

    [Fact]
    public void ADamagedMp3IsCorruptWithWhereItBrokeNotTheDecodersOwnMessage()
    {
        byte[] clip = Clip("mp3");
        var crashes = new List<AudioDecodeException>();
        for (int seed = 0; seed < 40; seed++)
        {
            byte[] damaged = (byte[])clip.Clone();
            var random = new Random(seed);
            for (int i = 0; i < 64; i++) damaged[random.Next(200, damaged.Length)] = (byte)random.Next(256);
            foreach (byte[] bytes in new[] { damaged, damaged[..random.Next(200, damaged.Length)] })
            {
                try
                {
                    AudioDecoder.Decode(bytes);
                }
                catch (AudioDecodeException e) when (e.InnerException is not null)
                {
                    crashes.Add(e);
                }
            }
        }
        // Damage that makes NLayer's arithmetic run off its tables, as callers found: it is there, and it reads well.
        Assert.Contains(crashes, e => e.InnerException is IndexOutOfRangeException);
        Assert.All(crashes, e =>
        {
            Assert.Equal(AudioDecodeError.Corrupt, e.Reason);
            Assert.StartsWith("the MP3 stream is corrupt or cut short: a frame near byte ", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(e.InnerException!.Message, e.Message, StringComparison.Ordinal);
        });
    }

    [Theory]
    [InlineData(float.NaN, "NaN")]
    [InlineData(float.PositiveInfinity, "infinite")]
    [InlineData(float.NegativeInfinity, "infinite")]
    public void AFloatWavWithNonFiniteSamplesIsCorrupt(float bad, string named)
    {
        float[] samples = WavWriter.Sine(4410, 44100, 440, 0.5);
        samples[1234] = bad;
        var e = Assert.Throws<AudioDecodeException>(() => AudioDecoder.Decode(WavWriter.Write([samples], 44100, "float32")));
        Assert.Equal(AudioDecodeError.Corrupt, e.Reason);
        Assert.Contains($"{named} sample (channel 0, sample 1234)", e.Message, StringComparison.Ordinal);
    }
}
