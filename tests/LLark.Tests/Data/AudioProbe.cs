using System.Numerics;

namespace LLark.Tests.Data;

/// <summary>
/// Measurements of rendered audio that the tests hold the labels to: a chroma from short-time FFTs, the correlation of
/// that chroma with the Krumhansl-Kessler key profiles, and a tempo from the autocorrelation of a spectral-flux onset
/// envelope. Written here, apart from the synthesiser, so that the labels are checked against the sound, not the MIDI.
/// </summary>
internal static class AudioProbe
{
    private static readonly double[] MajorProfile = [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88];
    private static readonly double[] MinorProfile = [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17];

    public static void Fft(Complex[] x)
    {
        int n = x.Length;
        for (int i = 1, j = 0; i < n; i++)
        {
            int bit = n >> 1;
            for (; (j & bit) != 0; bit >>= 1) j ^= bit;
            j ^= bit;
            if (i < j) (x[i], x[j]) = (x[j], x[i]);
        }
        for (int len = 2; len <= n; len <<= 1)
        {
            Complex w = Complex.FromPolarCoordinates(1, -2 * Math.PI / len);
            for (int i = 0; i < n; i += len)
            {
                Complex wk = Complex.One;
                for (int k = 0; k < len / 2; k++)
                {
                    Complex a = x[i + k], b = x[i + k + len / 2] * wk;
                    x[i + k] = a + b;
                    x[i + k + len / 2] = a - b;
                    wk *= w;
                }
            }
        }
    }

    /// <summary>Magnitude spectra of Hann-windowed frames.</summary>
    public static IEnumerable<double[]> Spectra(float[] samples, int size, int hop)
    {
        var window = new double[size];
        for (int i = 0; i < size; i++) window[i] = 0.5 - 0.5 * Math.Cos(2 * Math.PI * i / size);
        for (int start = 0; start + size <= samples.Length; start += hop)
        {
            var frame = new Complex[size];
            for (int i = 0; i < size; i++) frame[i] = samples[start + i] * window[i];
            Fft(frame);
            var magnitude = new double[size / 2];
            for (int i = 0; i < size / 2; i++) magnitude[i] = frame[i].Magnitude;
            yield return magnitude;
        }
    }

    /// <summary>
    /// Energy per pitch class (0 = C) between 100 Hz and 2 kHz, from 16384-point frames (2.7 Hz bins, so a semitone
    /// spans over 2 bins from 100 Hz up); sums to 1.
    /// </summary>
    public static double[] Chroma(float[] samples, int sampleRate)
    {
        const int size = 16384;
        var chroma = new double[12];
        foreach (double[] spectrum in Spectra(samples, size, size / 2))
        {
            for (int bin = 1; bin < spectrum.Length; bin++)
            {
                double f = bin * (double)sampleRate / size;
                if (f < 100 || f > 2000) continue;
                int midi = (int)Math.Round(69 + 12 * Math.Log2(f / 440));
                chroma[((midi % 12) + 12) % 12] += spectrum[bin] * spectrum[bin];
            }
        }
        double total = chroma.Sum();
        return chroma.Select(c => c / total).ToArray();
    }

    /// <summary>The key (tonic, minor?) whose rotated profile correlates best with the chroma, and every key's correlation.</summary>
    public static (int Tonic, bool Minor, double[,] Correlations) BestKey(double[] chroma)
    {
        var r = new double[12, 2];
        (int, bool) best = (0, false);
        double bestR = double.NegativeInfinity;
        for (int tonic = 0; tonic < 12; tonic++)
        {
            for (int m = 0; m < 2; m++)
            {
                double[] profile = m == 0 ? MajorProfile : MinorProfile;
                double[] rotated = Enumerable.Range(0, 12).Select(pc => profile[((pc - tonic) % 12 + 12) % 12]).ToArray();
                r[tonic, m] = Pearson(chroma, rotated);
                if (r[tonic, m] > bestR) { bestR = r[tonic, m]; best = (tonic, m == 1); }
            }
        }
        return (best.Item1, best.Item2, r);
    }

    private static double Pearson(double[] a, double[] b)
    {
        double ma = a.Average(), mb = b.Average(), sab = 0, saa = 0, sbb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            sab += (a[i] - ma) * (b[i] - mb);
            saa += (a[i] - ma) * (a[i] - ma);
            sbb += (b[i] - mb) * (b[i] - mb);
        }
        return sab / Math.Sqrt(saa * sbb);
    }

    /// <summary>Half-wave rectified log-magnitude spectral flux, one value per hop of 512 samples.</summary>
    public static double[] OnsetEnvelope(float[] samples)
    {
        double[]? previous = null;
        var flux = new List<double>();
        foreach (double[] spectrum in Spectra(samples, 2048, 512))
        {
            double[] log = spectrum.Select(m => Math.Log(1 + 1000 * m)).ToArray();
            double sum = 0;
            if (previous is not null)
                for (int i = 0; i < log.Length; i++) sum += Math.Max(0, log[i] - previous[i]);
            flux.Add(sum);
            previous = log;
        }
        return [.. flux];
    }

    /// <summary>The tempo (BPM) whose beat period maximises the onset envelope's autocorrelation within [min, max] BPM.</summary>
    public static double Tempo(float[] samples, int sampleRate, double minBpm = 50, double maxBpm = 200)
    {
        double[] env = OnsetEnvelope(samples);
        double mean = env.Average();
        double[] x = env.Select(v => v - mean).ToArray();
        double frameRate = sampleRate / 512.0;
        int minLag = (int)Math.Floor(frameRate * 60 / maxBpm), maxLag = (int)Math.Ceiling(frameRate * 60 / minBpm);
        double Acf(int lag)
        {
            double s = 0;
            for (int i = 0; i + lag < x.Length; i++) s += x[i] * x[i + lag];
            return s / (x.Length - lag);
        }
        var acf = Enumerable.Range(0, maxLag + 2).Select(Acf).ToArray();
        int best = minLag;
        for (int lag = minLag; lag <= maxLag; lag++) if (acf[lag] > acf[best]) best = lag;
        // Parabolic interpolation between neighbouring lags for a sub-frame period.
        double a = acf[best - 1], b = acf[best], c = acf[best + 1];
        double shift = (a - 2 * b + c) != 0 ? 0.5 * (a - c) / (a - 2 * b + c) : 0;
        return 60 * frameRate / (best + shift);
    }
}
