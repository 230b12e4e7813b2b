using LLark.Encoder.Engine.Spectral;

namespace LLark.Tests.Encoder.Engine.Spectral;

/// <summary>The spectral family's DSP against definitions: a direct DFT, the Slaney mel scale, librosa's filter shapes.</summary>
public sealed class SpectralDspTests
{
    [Theory]
    [InlineData(16)]
    [InlineData(2048)]
    public void TheRealFftPowerMatchesADirectDft(int n)
    {
        var random = new Random(3);
        double[] x = Enumerable.Range(0, n).Select(_ => random.NextDouble() * 2 - 1).ToArray();
        var power = new double[n / 2 + 1];
        new RealFft(n).Power(x, power, 1);
        for (int k = 0; k <= n / 2; k++)
        {
            double re = 0, im = 0;
            for (int i = 0; i < n; i++)
            {
                re += x[i] * Math.Cos(2 * Math.PI * k * i / n);
                im -= x[i] * Math.Sin(2 * Math.PI * k * i / n);
            }
            Assert.Equal(re * re + im * im, power[k], 1e-8 * n);
        }
    }

    [Fact]
    public void AFullScaleSineOnABinCentreHasPowerOne()
    {
        const int n = 2048, rate = 22050;
        double hz = 40.0 * rate / n;
        float[] sine = Enumerable.Range(0, rate).Select(i => (float)Math.Sin(2 * Math.PI * hz * i / rate)).ToArray();
        double[] power = SpectralDsp.PowerSpectrogram(sine, n, 294, 10);
        Assert.Equal(1.0, power[5 * (n / 2 + 1) + 40], 1e-6);
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1000, 15)]
    [InlineData(440, 6.6)]
    [InlineData(6400, 42)]
    public void TheSlaneyMelScaleIsLinearTo1kHzAndLogAbove(double hz, double mel)
    {
        Assert.Equal(mel, SpectralDsp.HzToMel(hz), 9);
        Assert.Equal(hz, SpectralDsp.MelToHz(mel), 6);
    }

    [Fact]
    public void SlaneyNormalisedMelBandsHaveUnitArea()
    {
        const int rate = 22050, n = 2048;
        SparseFilter[] bank = SpectralDsp.MelFilterbank(rate, n, 64, 27.5, 11025);
        Assert.Equal(64, bank.Length);
        // A triangle of height 2/width over its width has area 1 in Hz; the bins sample it every rate/n Hz.
        foreach (SparseFilter band in bank.Skip(8).Take(55))
            Assert.Equal(1.0, band.Weights.Sum() * rate / n, 0.05);
    }

    [Fact]
    public void TheChromaFilterOfTheBinAt440HzPeaksAtA()
    {
        const int rate = 22050, n = 2048, bins = n / 2 + 1;
        double[] bank = SpectralDsp.ChromaFilterbank(rate, n, 5, 2);
        int bin = (int)Math.Round(440.0 * n / rate);
        double[] column = Enumerable.Range(0, 12).Select(c => bank[c * bins + bin]).ToArray();
        Assert.Equal(9, Array.IndexOf(column, column.Max()));
    }

    [Fact]
    public void ThePeriodOfAPulseTrainIsTheTempogramPeak()
    {
        // A pulse every 25 values of an envelope at 50 Hz: 120 BPM.
        double[] onset = Enumerable.Range(0, 1000).Select(i => i % 25 == 0 ? 1.0 : 0.0).ToArray();
        double[] bpm = SpectralDsp.TempoGrid(30, 16, 54);
        double[] gram = SpectralDsp.Tempogram(onset, 50, [500], 200, bpm);
        Assert.Equal(120, bpm[Array.IndexOf(gram, gram.Max())], 1e-9);
        Assert.All(gram, r => Assert.InRange(r, -1, 1));
    }

    [Fact]
    public void AFlatEnvelopeHasAZeroTempogram()
    {
        double[] gram = SpectralDsp.Tempogram(Enumerable.Repeat(0.5, 400).ToArray(), 50, [100, 200], 100, SpectralDsp.TempoGrid(30, 16, 54));
        Assert.All(gram, r => Assert.Equal(0, r));
    }
}
