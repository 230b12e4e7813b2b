namespace LLark.Evaluation.Dsp;

/// <summary>An in-place iterative radix-2 complex FFT (decimation in time), for power-of-two lengths.</summary>
public static class Fft
{
    public static void Forward(double[] re, double[] im)
    {
        ArgumentNullException.ThrowIfNull(re);
        ArgumentNullException.ThrowIfNull(im);
        int n = re.Length;
        if (im.Length != n) throw new ArgumentException("real and imaginary parts differ in length");
        if (n == 0 || (n & (n - 1)) != 0) throw new ArgumentException($"FFT length {n} is not a power of two");
        for (int i = 1, j = 0; i < n; i++)
        {
            int bit = n >> 1;
            for (; (j & bit) != 0; bit >>= 1) j ^= bit;
            j |= bit;
            if (i < j)
            {
                (re[i], re[j]) = (re[j], re[i]);
                (im[i], im[j]) = (im[j], im[i]);
            }
        }
        for (int size = 2; size <= n; size <<= 1)
        {
            double angle = -2 * Math.PI / size;
            double stepRe = Math.Cos(angle), stepIm = Math.Sin(angle);
            int half = size >> 1;
            for (int start = 0; start < n; start += size)
            {
                double wRe = 1, wIm = 0;
                for (int k = 0; k < half; k++)
                {
                    int a = start + k, b = a + half;
                    double tRe = re[b] * wRe - im[b] * wIm;
                    double tIm = re[b] * wIm + im[b] * wRe;
                    re[b] = re[a] - tRe;
                    im[b] = im[a] - tIm;
                    re[a] += tRe;
                    im[a] += tIm;
                    double nextRe = wRe * stepRe - wIm * stepIm;
                    wIm = wRe * stepIm + wIm * stepRe;
                    wRe = nextRe;
                }
            }
        }
    }
}

/// <summary>
/// Magnitude short-time Fourier transform: periodic Hann windows of <see cref="FftSize"/> samples every
/// <see cref="Hop"/>, frames starting at sample 0 (no centring), bins 0 .. FftSize / 2.
/// </summary>
public sealed class Stft
{
    public Stft(int fftSize, int hop)
    {
        if (fftSize < 2 || (fftSize & (fftSize - 1)) != 0) throw new ArgumentOutOfRangeException(nameof(fftSize), fftSize, "not a power of two");
        if (hop < 1) throw new ArgumentOutOfRangeException(nameof(hop), hop, "hop must be positive");
        FftSize = fftSize;
        Hop = hop;
        Window = [.. Enumerable.Range(0, fftSize).Select(i => 0.5 - 0.5 * Math.Cos(2 * Math.PI * i / fftSize))];
    }

    public int FftSize { get; }

    public int Hop { get; }

    public int Bins => FftSize / 2 + 1;

    internal double[] Window { get; }

    public int FrameCount(int samples) => samples < FftSize ? (samples > 0 ? 1 : 0) : 1 + (samples - FftSize) / Hop;

    /// <summary>|X[frame, bin]|; a clip shorter than one window is zero-padded to one frame.</summary>
    public double[][] Magnitudes(ReadOnlySpan<float> samples)
    {
        int frames = FrameCount(samples.Length);
        var result = new double[frames][];
        var re = new double[FftSize];
        var im = new double[FftSize];
        for (int f = 0; f < frames; f++)
        {
            int start = f * Hop;
            for (int i = 0; i < FftSize; i++)
            {
                re[i] = start + i < samples.Length ? samples[start + i] * Window[i] : 0;
                im[i] = 0;
            }
            Fft.Forward(re, im);
            var row = new double[Bins];
            for (int k = 0; k < Bins; k++) row[k] = Math.Sqrt(re[k] * re[k] + im[k] * im[k]);
            result[f] = row;
        }
        return result;
    }
}
