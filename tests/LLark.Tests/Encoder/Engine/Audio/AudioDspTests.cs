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
}
