using System.Reflection;
using System.Text.Json.Serialization;
using LLark.Encoder.Engine.Model;
using LLark.Encoder.Engine.Spectral;
using Xunit.Abstractions;

namespace LLark.Tests.Encoder.Engine.Spectral;

/// <summary>The spectral encoder on signals with known answers.</summary>
public sealed class SpectralEncoderTests(ITestOutputHelper output)
{
    private static readonly SpectralEncoder Encoder = new();
    private static readonly SpectralEncoderConfig Defaults = new();

    private static float[] Sine(double hz, double seconds, double amplitude = 0.5) =>
        Enumerable.Range(0, (int)(seconds * 22050)).Select(i => (float)(amplitude * Math.Sin(2 * Math.PI * hz * i / 22050))).ToArray();

    private static float[] ClickTrain(double bpm, double seconds)
    {
        var clicks = new float[(int)(seconds * 22050)];
        for (double at = 0; at < clicks.Length; at += 22050 * 60 / bpm)
            clicks[(int)at] = 1;
        return clicks;
    }

    /// <summary>Mean of one block over the frames from <paramref name="fromFrame"/> on.</summary>
    private static double[] BlockMean(AudioEmbedding e, int offset, int count, int fromFrame = 0) =>
        Enumerable.Range(0, count).Select(j => Enumerable.Range(fromFrame, e.Frames - fromFrame).Average(t => (double)e.Values[t * e.Width + offset + j])).ToArray();

    [Fact]
    public void TheDefaultsGive25FramesPerSecondOfAWholeJukeboxContext()
    {
        Assert.Equal(("spectral", "spectral-v1/fps25", 22050, 524_288), (Encoder.Family, Encoder.ModelId, Encoder.SampleRate, Encoder.ContextSamples));
        Assert.Equal((25.0, 25.0, 882, 294), (Encoder.Fps, Encoder.EffectiveFps, Defaults.Hop, Defaults.SubHop));
        Assert.Equal(64 + 12 + 1 + 54, Encoder.Width);
        Assert.Equal(Defaults.ToJson(), Encoder.Configuration);
    }

    [Theory]
    [InlineData(882, 1)]
    [InlineData(1763, 1)]
    [InlineData(22050 * 10, 250)]
    [InlineData(22050 * 10 + 881, 250)]
    [InlineData(600_000, 594)]
    public void AClipGivesFloorOfSecondsTimesFpsFramesUpToTheContext(int samples, int frames)
    {
        AudioEmbedding e = Encoder.Embed(new float[samples]);
        Assert.Equal((frames, Encoder.Width, frames * Encoder.Width, 25.0), (e.Frames, e.Width, e.Values.Length, e.FramesPerSecond));
    }

    [Fact]
    public void LessThanOneHopIsTooShort()
    {
        Assert.Null(Encoder.TooShort(882));
        Assert.Contains("882", Encoder.TooShort(881), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => Encoder.Embed(new float[881]));
    }

    [Fact]
    public void SilenceGivesFiniteFramesAtTheFloor()
    {
        AudioEmbedding e = Encoder.Embed(new float[22050 * 3]);
        Assert.All(e.Values, v => Assert.True(float.IsFinite(v)));
        float floor = (float)((Defaults.MelFloorDb - Defaults.MelOffsetDb) / Defaults.MelScaleDb);
        Assert.All(BlockMean(e, 0, 64), v => Assert.Equal(floor, v, 1e-6));
        Assert.All(e.Values.Where((_, i) => i % e.Width >= 64), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void ASineAtA4PeaksChromaAtAAndTheMelBandHolding440Hz()
    {
        AudioEmbedding e = Encoder.Embed(Sine(440, 4));
        double[] mel = BlockMean(e, 0, 64, 3), chroma = BlockMean(e, 64, 12, 3);
        double melMin = SpectralDsp.HzToMel(Defaults.MelFmin), step = (SpectralDsp.HzToMel(Defaults.MelFmax) - melMin) / 65;
        int band = (int)Math.Round((SpectralDsp.HzToMel(440) - melMin) / step) - 1;
        Assert.Equal(band, Array.IndexOf(mel, mel.Max()));
        Assert.Equal(9, Array.IndexOf(chroma, chroma.Max()));
        Assert.Equal(1.0, chroma[9], 1e-6);
        // librosa's chroma filters spread a bin a Gaussian of one semitone's width: G# and A# read about e^-2.
        Assert.All(chroma.Where((_, p) => p is not (8 or 9 or 10)), v => Assert.True(v < 0.05, $"{v}"));
        Assert.All(new[] { chroma[8], chroma[10] }, v => Assert.InRange(v, 0.05, 0.25));
    }

    [Theory]
    [InlineData(120)]
    [InlineData(90)]
    [InlineData(150)]
    public void AClickTrainPeaksTheTempogramAtItsTempo(double bpm)
    {
        AudioEmbedding e = Encoder.Embed(ClickTrain(bpm, 20));
        double[] gram = BlockMean(e, 64 + 12 + 1, Defaults.TempoBins);
        double peak = Encoder.Tempi[Array.IndexOf(gram, gram.Max())];
        output.WriteLine($"{bpm} BPM clicks: tempogram peak at {peak:F1} BPM");
        Assert.InRange(peak / bpm, 1 / 1.023, 1.023);
    }

    [Fact]
    public void TheFramesAreDeterministic()
    {
        float[] clip = Sine(261.63, 3).Zip(ClickTrain(100, 3), (a, b) => a + b).ToArray();
        Assert.Equal(Encoder.Embed(clip).Values, new SpectralEncoder().Embed(clip).Values);
    }

    [Fact]
    public void EverySettingChangesTheConfiguration()
    {
        PropertyInfo[] settings = typeof(SpectralEncoderConfig).GetProperties()
            .Where(p => p.SetMethod is not null && p.GetCustomAttribute<JsonIgnoreAttribute>() is null).ToArray();
        Assert.Equal(19, settings.Length);
        foreach (PropertyInfo setting in settings)
        {
            SpectralEncoderConfig changed = SpectralEncoderConfig.FromJson(Defaults.ToJson());
            object value = setting.GetValue(changed) switch
            {
                string s => s + "b",
                int i => i * 2,
                double d => d == 0 ? 1 : d * 0.9,
                var other => throw new InvalidOperationException($"{setting.Name}: {other}"),
            };
            setting.SetValue(changed, value);
            Assert.NotEqual(Encoder.Configuration, new SpectralEncoder(changed).Configuration);
            Assert.Equal(changed, SpectralEncoderConfig.FromJson(changed.ToJson()));
        }
    }

    [Fact]
    public void ImpossibleSettingsAreRefused()
    {
        Assert.Throws<EncoderConfigException>(() => new SpectralEncoder(Defaults with { FftSize = 2000 }));
        Assert.Throws<EncoderConfigException>(() => new SpectralEncoder(Defaults with { MelFmax = 20000 }));
        Assert.Throws<EncoderConfigException>(() => SpectralEncoderConfig.FromJson("{\"n_fft\": \"many\"}"));
    }
}
