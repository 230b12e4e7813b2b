using LLark.Evaluation;
using LLark.Evaluation.Dsp;

namespace LLark.Tests.Evaluation;

public sealed class DspBaselineTests
{
    private const int Rate = 22050;

    /// <summary>Clicks (10 ms decaying 1.5 kHz bursts) every beat.</summary>
    private static float[] ClickTrack(double bpm, double seconds, int rate = Rate)
    {
        var audio = new float[(int)(seconds * rate)];
        double period = 60.0 / bpm;
        for (double t = 0.05; t < seconds; t += period)
        {
            int start = (int)(t * rate);
            for (int i = 0; i < rate / 100 && start + i < audio.Length; i++)
                audio[start + i] += (float)(Math.Exp(-i / (rate * 0.002)) * Math.Sin(2 * Math.PI * 1500 * i / rate));
        }
        return audio;
    }

    private static double Hz(int midi) => 440 * Math.Pow(2, (midi - 69) / 12.0);

    /// <summary>Sine-tone triads (root position, plus the root an octave down), one chord a second, the progression three times.</summary>
    private static float[] Chords(int[][] chords, int rate = Rate)
    {
        int perChord = rate;
        var audio = new float[chords.Length * perChord * 3];
        for (int r = 0; r < 3; r++)
        {
            for (int c = 0; c < chords.Length; c++)
            {
                int offset = (r * chords.Length + c) * perChord;
                int[] notes = [.. chords[c], chords[c][0] - 12];
                for (int i = 0; i < perChord; i++)
                {
                    double envelope = Math.Min(1, Math.Min(i, perChord - i) / (0.01 * rate));
                    double v = notes.Sum(n => Math.Sin(2 * Math.PI * Hz(n) * i / rate));
                    audio[offset + i] = (float)(0.2 * envelope * v);
                }
            }
        }
        return audio;
    }

    [Fact]
    public void FftMatchesTheDefinitionOfTheDft()
    {
        var random = new Random(3);
        const int n = 64;
        double[] x = [.. Enumerable.Range(0, n).Select(_ => random.NextDouble() - 0.5)];
        double[] re = [.. x], im = new double[n];
        Fft.Forward(re, im);
        for (int k = 0; k < n; k++)
        {
            double sr = 0, si = 0;
            for (int t = 0; t < n; t++)
            {
                sr += x[t] * Math.Cos(-2 * Math.PI * k * t / n);
                si += x[t] * Math.Sin(-2 * Math.PI * k * t / n);
            }
            Assert.Equal(sr, re[k], 9);
            Assert.Equal(si, im[k], 9);
        }
        Assert.Throws<ArgumentException>(() => Fft.Forward(new double[12], new double[12]));
    }

    [Fact]
    public void StftFindsASineInItsBin()
    {
        var stft = new Stft(1024, 512);
        float[] tone = [.. Enumerable.Range(0, 4096).Select(i => (float)Math.Sin(2 * Math.PI * 100 * i / 1024.0))];
        double[][] mags = stft.Magnitudes(tone);
        Assert.Equal(7, mags.Length);
        Assert.All(mags, row => Assert.Equal(100, Array.IndexOf(row, row.Max())));
    }

    [Theory]
    [InlineData(80)]
    [InlineData(100)]
    [InlineData(120)]
    [InlineData(128)]
    [InlineData(143)]
    public void ClickTrackTempoIsWithinAcc1(double bpm)
    {
        TempoEstimate? estimate = new TempoEstimator().Estimate(ClickTrack(bpm, 12), Rate);
        Assert.NotNull(estimate);
        Assert.True(Metrics.TempoAcc1(bpm, estimate.Bpm), $"{bpm} BPM read as {estimate.Bpm:0.##}");
    }

    [Theory]
    [InlineData(60)]
    [InlineData(190)]
    [InlineData(240)]
    public void FarTemposAreFoundUpToTheMetricalLevel(double bpm)
    {
        TempoEstimate? estimate = new TempoEstimator().Estimate(ClickTrack(bpm, 12), Rate);
        Assert.NotNull(estimate);
        Assert.True(Metrics.TempoAcc2(bpm, estimate.Bpm), $"{bpm} BPM read as {estimate.Bpm:0.##}");
    }

    [Fact]
    public void ClickTrackAtAnotherSampleRateIsResampledFirst()
    {
        TempoEstimate? estimate = new TempoEstimator().Estimate(ClickTrack(110, 10, 44100), 44100);
        Assert.True(Metrics.TempoAcc1(110, estimate?.Bpm), $"read as {estimate?.Bpm}");
    }

    [Fact]
    public void SilenceHasNoTempoAndNoKey()
    {
        var silence = new float[Rate * 5];
        Assert.Null(new TempoEstimator().Estimate(silence, Rate));
        Assert.Null(new KeyEstimator().Estimate(silence, Rate));
    }

    [Fact]
    public void MajorProgressionIsItsKey()
    {
        // D major: D - G - A - D (I IV V I), triads from D4.
        int[][] progression = [[62, 66, 69], [67, 71, 74], [69, 73, 76], [62, 66, 69]];
        KeyEstimate? estimate = new KeyEstimator().Estimate(Chords(progression), Rate);
        Assert.NotNull(estimate);
        Assert.Equal("D major", estimate.Key.ToString());
        Assert.Equal(1.0, estimate.Chroma.Sum(), 9);
    }

    [Fact]
    public void MinorProgressionIsItsKey()
    {
        // A minor: Am - Dm - E - Am (i iv V i); the raised leading tone (G#) is what tells it from C major.
        int[][] progression = [[57, 60, 64], [62, 65, 69], [64, 68, 71], [57, 60, 64]];
        KeyEstimate? estimate = new KeyEstimator().Estimate(Chords(progression), Rate);
        Assert.NotNull(estimate);
        Assert.Equal("A minor", estimate.Key.ToString());
    }

    [Fact]
    public void NaturalMinorWithoutALeadingToneIsAtWorstItsRelativeMajor()
    {
        // Am - Dm - Em - Am uses only the white keys: A minor, or C major (relative, 0.3) at worst.
        int[][] progression = [[57, 60, 64], [62, 65, 69], [64, 67, 71], [57, 60, 64]];
        KeyEstimate? estimate = new KeyEstimator().Estimate(Chords(progression), Rate);
        double score = Metrics.KeyWeightedScore(MusicKey.ParseLabel("A minor")!.Value, estimate?.Key);
        Assert.True(score >= 0.3, $"A minor read as {estimate?.Key} (score {score})");
    }

    [Fact]
    public void TransposingTheAudioTransposesTheKey()
    {
        int[][] cMajor = [[60, 64, 67], [65, 69, 72], [67, 71, 74], [60, 64, 67]];
        for (int shift = 0; shift < 12; shift += 5)
        {
            int[][] moved = [.. cMajor.Select(ch => ch.Select(n => n + shift).ToArray())];
            KeyEstimate? estimate = new KeyEstimator().Estimate(Chords(moved), Rate);
            Assert.Equal(new MusicKey(shift % 12, KeyMode.Major), estimate?.Key);
        }
    }

    [Fact]
    public void BaselineRunsBothEstimators()
    {
        float[] audio = ClickTrack(100, 8);
        float[] chords = Chords([[62, 66, 69], [67, 71, 74], [69, 73, 76], [62, 66, 69]]);
        for (int i = 0; i < Math.Min(audio.Length, chords.Length); i++) audio[i] += chords[i];
        DspBaselineResult result = DspBaseline.Run(audio, Rate);
        Assert.True(Metrics.TempoAcc2(100, result.Tempo?.Bpm), $"tempo {result.Tempo?.Bpm}");
        Assert.True(Metrics.KeyWeightedScore(new MusicKey(2, KeyMode.Major), result.Key?.Key) >= 0.5, $"key {result.Key?.Key}");
    }
}
