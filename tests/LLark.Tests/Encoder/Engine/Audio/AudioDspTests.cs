using System.Runtime.InteropServices;
using LLark.Encoder.Engine.Audio;
using Xunit.Abstractions;

namespace LLark.Tests.Encoder.Engine.Audio;

/// <summary>Downmix, resampling and normalisation against the fixture's 48 kHz stereo source of the test clip.</summary>
public sealed class AudioDspTests(ITestOutputHelper output)
{
    [Fact]
    public void TheStereo48kSourceBecomesTheReferenceClip()
    {
        byte[] bytes = File.ReadAllBytes(JukeboxTiny.File("test_audio_4s_stereo_48k.wav"));
        PreparedAudio prepared = AudioFrontEnd.Prepare(bytes, 44100, 1 << 20);
        float[] expected = JukeboxTiny.NormalizedAudio();
        Assert.Equal(expected.Length, prepared.Samples.Length);
        Assert.Equal((48000, 2, 4.0), (prepared.SourceSampleRate, prepared.SourceChannels, prepared.SourceSeconds));
        double max = expected.Zip(prepared.Samples, (a, b) => Math.Abs((double)a - b)).Max();
        output.WriteLine($"48 kHz stereo -> 44.1 kHz mono vs audio_normalized: max |diff| {max:E2}");
        // The reference was rounded to int16 after the same polyphase filter (README: 3.6e-5).
        Assert.True(max < 1e-4, $"max |diff| {max:E2}");
    }

    [Fact]
    public void ResamplingKeepsATonesAmplitudeAndPhase()
    {
        float[] tone = WavWriter.Sine(22050, 22050, 1000, 0.5);
        float[] up = AudioDsp.Resample(tone, 22050, 44100);
        Assert.Equal(44100, up.Length);
        float[] expected = WavWriter.Sine(44100, 44100, 1000, 0.5);
        double interior = Enumerable.Range(2000, 40000).Max(i => Math.Abs((double)up[i] - expected[i]));
        Assert.True(interior < 1e-3, $"interior error {interior:E2}");
    }

    [Fact]
    public void SilenceNormalisesToSilence()
    {
        var silence = new float[1000];
        AudioDsp.PeakNormalise(silence);
        Assert.All(silence, x => Assert.Equal(0f, x));
        byte[] wav = WavWriter.Write([new float[44100]], 44100, "pcm16");
        PreparedAudio prepared = AudioFrontEnd.Prepare(wav, 44100, 1 << 20);
        Assert.All(prepared.Samples, x => Assert.Equal(0f, x));
    }

    [Fact]
    public void LongClipsAreCutAndShortOnesPadded()
    {
        byte[] wav = WavWriter.Write([WavWriter.Sine(3000, 44100, 440, 0.25)], 44100, "pcm16");
        PreparedAudio cut = AudioFrontEnd.Prepare(wav, 44100, 2048);
        Assert.Equal(2048, cut.Samples.Length);
        Assert.Equal(1f, cut.Samples.Max(MathF.Abs), 3);
        float[] padded = AudioFrontEnd.Prepare(wav, 44100, 4096).PaddedTo(4096);
        Assert.Equal(4096, padded.Length);
        Assert.All(padded[3000..], x => Assert.Equal(0f, x));
    }

    [Fact]
    public void DownmixIsTheChannelMean()
    {
        float[] mono = AudioDsp.Downmix([[1f, 0.5f], [0f, -0.5f], [0.5f, 0f]]);
        Assert.Equal([0.5f, 0f], mono);
    }

    /// <summary>The front end as it was before it streamed: every channel of the whole clip decoded, then each step on all of it.</summary>
    private static PreparedAudio WholeClip(byte[] bytes, int sampleRate, int contextSamples)
    {
        DecodedAudio decoded = AudioDecoder.Decode(bytes);
        float[] resampled = AudioDsp.Resample(AudioDsp.Downmix(decoded.Channels), decoded.SampleRate, sampleRate);
        AudioDsp.PeakNormalise(resampled);
        float[] cut = resampled.Length > contextSamples ? resampled[..contextSamples] : resampled;
        return new PreparedAudio(cut, sampleRate, (double)decoded.Frames / decoded.SampleRate, decoded.SampleRate, decoded.Channels.Length, decoded.Format);
    }

    public static TheoryData<string, int> Clips() => new()
    {
        { "48 kHz stereo pcm8, loudest after the context", 44100 },
        { "44.1 kHz stereo pcm8, loudest after the context", 44100 },
        { "22.05 kHz mono float64", 44100 },
        { "44.1 kHz 3 channels pcm16, shorter than the context", 1 << 20 },
        { "mp3", 22050 },
        { "ogg", 22050 },
    };

    [Theory]
    [MemberData(nameof(Clips))]
    public void ALongClipIsPreparedBitForBitAsTheWholeClipPathPreparedIt(string clip, int contextSamples)
    {
        byte[] bytes = clip switch
        {
            "mp3" or "ogg" => File.ReadAllBytes(TestSupport.RepoPaths.Fixture("audio-formats", $"tone_440_660_stereo.{clip}")),
            "22.05 kHz mono float64" => WavWriter.Write([WavWriter.Sine(3 * 22050 + 7, 22050, 330, 0.7)], 22050, "float64"),
            "44.1 kHz 3 channels pcm16, shorter than the context" =>
                WavWriter.Write([WavWriter.Sine(30000, 44100, 220, 0.3), WavWriter.Sine(30000, 44100, 440, 0.2), new float[30000]], 44100, "pcm16"),
            _ => WavWriter.LongPcm8(5 * (clip.StartsWith("48", StringComparison.Ordinal) ? 48000 : 44100) + 123, 2,
                clip.StartsWith("48", StringComparison.Ordinal) ? 48000 : 44100),
        };
        PreparedAudio streamed = AudioFrontEnd.Prepare(bytes, 44100, contextSamples);
        PreparedAudio whole = WholeClip(bytes, 44100, contextSamples);

        Assert.Equal(whole.Samples.Length, streamed.Samples.Length);
        Assert.True(MemoryMarshal.AsBytes(whole.Samples.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(streamed.Samples.AsSpan())),
            $"{clip}: the streamed samples differ from the whole clip's");
        Assert.Equal((whole.SourceSeconds, whole.SourceSampleRate, whole.SourceChannels, whole.Format),
            (streamed.SourceSeconds, streamed.SourceSampleRate, streamed.SourceChannels, streamed.Format));
    }

    [Fact]
    public void ResamplingChunkByChunkGivesTheSameSamplesAsAllAtOnce()
    {
        float[] input = WavWriter.Sine(50_000, 48000, 1234, 0.9);
        float[] once = AudioDsp.Resample(input, 48000, 44100);
        var chunked = new PolyphaseResampler(48000, 44100, keep: long.MaxValue);
        for (int at = 0, step = 1; at < input.Length; at += step, step = step * 3 % 9973 + 1)
            chunked.Push(input.AsSpan(at, Math.Min(step, input.Length - at)));
        chunked.Finish();
        Assert.Equal(once, chunked.Kept());
        Assert.Equal(once.Length, chunked.Produced);
        Assert.Equal(once.Max(MathF.Abs), chunked.Peak);
    }

    /// <summary>
    /// Told how long its input is, the resampler allocates the outputs it keeps once, at their final size: grown by
    /// doubling they would leave most of their size again behind. A wrong length changes nothing but the allocations.
    /// </summary>
    [Theory]
    [InlineData(200_000L)]
    [InlineData(long.MaxValue)]
    public void TheKeptOutputsAreAllocatedOnceWhenTheInputsLengthIsKnown(long keep)
    {
        float[] input = WavWriter.Sine(480_000, 48000, 440, 0.5);
        float[] expected = Resample(input, keep, inputHint: 0);
        long before = GC.GetAllocatedBytesForCurrentThread();
        float[] kept = Resample(input, keep, inputHint: input.Length);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(expected, kept);
        Assert.Equal((int)Math.Min(keep, 220_500), kept.Length);
        // The kept outputs, the filter (6,401 doubles) and the input window (a read and the filter's span, in floats).
        long fixedBytes = 6_401 * 8 + (AudioReader.ChunkFrames + 45) * 4;
        Assert.InRange(allocated, 4L * kept.Length, 4L * kept.Length + fixedBytes + (8 << 10));
        foreach (long wrong in new long[] { 1, input.Length / 2, input.Length * 3L })
            Assert.Equal(expected, Resample(input, keep, wrong));
    }

    private static float[] Resample(float[] input, long keep, long inputHint)
    {
        var resampler = new PolyphaseResampler(48000, 22050, keep, inputHint);
        for (int at = 0; at < input.Length; at += AudioReader.ChunkFrames)
            resampler.Push(input.AsSpan(at, Math.Min(AudioReader.ChunkFrames, input.Length - at)));
        resampler.Finish();
        return resampler.Kept();
    }

    /// <summary>
    /// A 60 MB 8-bit stereo WAV (11 minutes) allocates about one context of floats, not the clip four times over;
    /// the bound is on this thread's allocations, which are the same on every run.
    /// </summary>
    [Fact]
    public void PreparingA60MegabyteWavAllocatesAboutOneContext()
    {
        const int Rate = 44100, Context = 1 << 20;
        byte[] wav = WavWriter.LongPcm8(30_000_000, 2, Rate);
        long before = GC.GetAllocatedBytesForCurrentThread();
        PreparedAudio prepared = AudioFrontEnd.Prepare(wav, Rate, Context);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        output.WriteLine($"{wav.Length / 1e6:F1} MB WAV ({prepared.SourceSeconds:F0} s): {allocated / 1e6:F1} MB allocated to prepare it");
        Assert.Equal(Context, prepared.Samples.Length);
        Assert.Equal(30_000_000.0 / Rate, prepared.SourceSeconds);
        Assert.True(allocated < 32L << 20, $"{allocated} bytes allocated");
    }
}
