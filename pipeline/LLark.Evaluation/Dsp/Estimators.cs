using LLark.Encoder.Engine.Audio;

namespace LLark.Evaluation.Dsp;

/// <summary>A tempo estimate with the evidence behind it.</summary>
public sealed record TempoEstimate(double Bpm, double Confidence, double EnvelopeFps);

/// <summary>
/// Tempo from the onset-strength envelope: spectral flux of a log-magnitude STFT (the mean over bins of the
/// half-wave-rectified frame-to-frame rise in dB, floored 80 dB below the clip's peak), its autocorrelation over lags
/// of 30-300 BPM, weighted by a log-normal tempo prior (centre 120 BPM, one octave standard deviation, as librosa's
/// beat tracker assumes), the best lag refined by parabolic interpolation of the raw autocorrelation.
/// </summary>
public sealed class TempoEstimator
{
    public int SampleRate { get; init; } = 22050;

    public int FftSize { get; init; } = 2048;

    public int Hop { get; init; } = 256;

    public double MinBpm { get; init; } = 30;

    public double MaxBpm { get; init; } = 300;

    public double PriorCentreBpm { get; init; } = 120;

    public double PriorOctaves { get; init; } = 1;

    /// <summary>Mono samples at <paramref name="sampleRate"/>; resampled to <see cref="SampleRate"/> first. Null when too short.</summary>
    public TempoEstimate? Estimate(float[] samples, int sampleRate)
    {
        ArgumentNullException.ThrowIfNull(samples);
        float[] audio = sampleRate == SampleRate ? samples : AudioDsp.Resample(samples, sampleRate, SampleRate);
        double[] envelope = OnsetEnvelope(audio);
        double fps = (double)SampleRate / Hop;
        int minLag = Math.Max(1, (int)Math.Floor(60 * fps / MaxBpm));
        int maxLag = (int)Math.Ceiling(60 * fps / MinBpm);
        if (envelope.Length < 2 * minLag + 2) return null;
        maxLag = Math.Min(maxLag, envelope.Length - 2);
        double mean = envelope.Average();
        double[] x = [.. envelope.Select(v => v - mean)];
        var acf = new double[maxLag + 2];
        for (int lag = 0; lag < acf.Length && lag < x.Length; lag++)
        {
            double sum = 0;
            for (int t = lag; t < x.Length; t++) sum += x[t] * x[t - lag];
            acf[lag] = sum;
        }
        if (!(acf[0] > 0)) return null;
        int best = -1;
        double bestScore = double.NegativeInfinity;
        for (int lag = minLag; lag <= maxLag; lag++)
        {
            double bpm = 60 * fps / lag;
            double z = Math.Log2(bpm / PriorCentreBpm) / PriorOctaves;
            double score = acf[lag] * Math.Exp(-0.5 * z * z);
            if (score > bestScore)
            {
                bestScore = score;
                best = lag;
            }
        }
        if (best < 0 || !(acf[best] > 0)) return null;
        double refined = best;
        if (best > 0 && best + 1 < acf.Length)
        {
            double a = acf[best - 1], b = acf[best], c = acf[best + 1];
            double denominator = a - 2 * b + c;
            if (denominator < 0) refined = best + 0.5 * (a - c) / denominator;
        }
        return new TempoEstimate(60 * fps / refined, acf[best] / acf[0], fps);
    }

    /// <summary>Spectral flux per frame (frame 0 is 0).</summary>
    internal double[] OnsetEnvelope(float[] audio)
    {
        double[][] mags = new Stft(FftSize, Hop).Magnitudes(audio);
        double peak = mags.Length == 0 ? 0 : mags.Max(r => r.Max());
        if (!(peak > 0)) return new double[mags.Length];
        double floorDb = 20 * Math.Log10(peak) - 80;
        double[][] db = [.. mags.Select(r => r.Select(m => Math.Max(20 * Math.Log10(Math.Max(m, 1e-20)), floorDb)).ToArray())];
        var flux = new double[db.Length];
        for (int t = 1; t < db.Length; t++)
        {
            double sum = 0;
            for (int k = 0; k < db[t].Length; k++) sum += Math.Max(0, db[t][k] - db[t - 1][k]);
            flux[t] = sum / db[t].Length;
        }
        return flux;
    }
}

/// <summary>A key estimate: the best of the 24 profiles, its correlation, and the clip's chroma (C..B, summing to 1).</summary>
public sealed record KeyEstimate(MusicKey Key, double Correlation, double[] Chroma);

/// <summary>
/// Key from a chroma vector: the magnitude spectrum's peaks (local maxima within 60 dB of the clip's loudest bin,
/// frequency refined by parabolic interpolation) between 80 Hz and 4 kHz, folded onto the nearest equal-tempered pitch
/// class (A4 = 440 Hz) and summed over the clip; then Pearson-correlated with the Krumhansl-Kessler probe-tone
/// profiles rotated to each of the 24 keys, the highest winning.
/// </summary>
public sealed class KeyEstimator
{
    /// <summary>Krumhansl and Kessler (1982), major and minor, tonic first.</summary>
    public static IReadOnlyList<double> MajorProfile { get; } = [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88];

    public static IReadOnlyList<double> MinorProfile { get; } = [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17];

    public int SampleRate { get; init; } = 22050;

    public int FftSize { get; init; } = 8192;

    public int Hop { get; init; } = 4096;

    public double MinHz { get; init; } = 80;

    public double MaxHz { get; init; } = 4000;

    public KeyEstimate? Estimate(float[] samples, int sampleRate)
    {
        ArgumentNullException.ThrowIfNull(samples);
        float[] audio = sampleRate == SampleRate ? samples : AudioDsp.Resample(samples, sampleRate, SampleRate);
        double[] chroma = Chroma(audio);
        double total = chroma.Sum();
        if (!(total > 0)) return null;
        for (int i = 0; i < 12; i++) chroma[i] /= total;
        MusicKey best = default;
        double bestR = double.NegativeInfinity;
        foreach (MusicKey key in MusicKey.All)
        {
            IReadOnlyList<double> profile = key.Mode == KeyMode.Major ? MajorProfile : MinorProfile;
            double r = Correlation(chroma, [.. Enumerable.Range(0, 12).Select(pc => profile[((pc - key.Tonic) % 12 + 12) % 12])]);
            if (r > bestR)
            {
                bestR = r;
                best = key;
            }
        }
        return new KeyEstimate(best, bestR, chroma);
    }

    internal double[] Chroma(float[] audio)
    {
        double[][] mags = new Stft(FftSize, Hop).Magnitudes(audio);
        var chroma = new double[12];
        double peak = mags.Length == 0 ? 0 : mags.Max(r => r.Max());
        if (!(peak > 0)) return chroma;
        double threshold = peak * 1e-3;
        double binHz = (double)SampleRate / FftSize;
        int low = Math.Max(1, (int)Math.Floor(MinHz / binHz)), high = Math.Min(FftSize / 2 - 1, (int)Math.Ceiling(MaxHz / binHz));
        foreach (double[] row in mags)
        {
            for (int k = low; k <= high; k++)
            {
                double m = row[k];
                if (m < threshold || m < row[k - 1] || m <= row[k + 1]) continue;
                double a = Math.Log(row[k - 1] + 1e-30), b = Math.Log(m + 1e-30), c = Math.Log(row[k + 1] + 1e-30);
                double denominator = a - 2 * b + c;
                double offset = denominator < 0 ? 0.5 * (a - c) / denominator : 0;
                double hz = (k + offset) * binHz;
                if (hz < MinHz || hz > MaxHz) continue;
                int pc = (((int)Math.Round(69 + 12 * Math.Log2(hz / 440)) % 12) + 12) % 12;
                chroma[pc] += m;
            }
        }
        return chroma;
    }

    private static double Correlation(double[] x, double[] y)
    {
        double mx = x.Average(), my = y.Average();
        double sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < x.Length; i++)
        {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx) * (x[i] - mx);
            syy += (y[i] - my) * (y[i] - my);
        }
        return sxx > 0 && syy > 0 ? sxy / Math.Sqrt(sxx * syy) : 0;
    }
}

/// <summary>The classical baseline the model is compared with: tempo and key from the signal alone, no model.</summary>
public sealed record DspBaselineResult(TempoEstimate? Tempo, KeyEstimate? Key);

public static class DspBaseline
{
    /// <summary>At most this much of a clip is analysed (LLark's encoder sees 23.78 s; the baseline gets a little more).</summary>
    public const double MaxSeconds = 30;

    public static DspBaselineResult Run(float[] mono, int sampleRate)
    {
        ArgumentNullException.ThrowIfNull(mono);
        int keep = (int)Math.Min(mono.Length, MaxSeconds * sampleRate);
        float[] clip = keep == mono.Length ? mono : mono[..keep];
        return new DspBaselineResult(new TempoEstimator().Estimate(clip, sampleRate), new KeyEstimator().Estimate(clip, sampleRate));
    }

    /// <summary>Decodes a file (any format the encoder reads), downmixes and runs the baseline.</summary>
    public static DspBaselineResult RunFile(string path)
    {
        DecodedAudio decoded = AudioDecoder.DecodeFile(path);
        return Run(AudioDsp.Downmix(decoded.Channels), decoded.SampleRate);
    }
}
