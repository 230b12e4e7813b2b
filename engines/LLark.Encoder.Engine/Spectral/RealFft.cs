namespace LLark.Encoder.Engine.Spectral;

/// <summary>
/// Power spectrum of real frames of a power-of-two length n, by one complex radix-2 FFT of length n/2 on the even and
/// odd samples packed as real and imaginary parts. Twiddles and the bit-reversal order are computed once per length;
/// an instance holds scratch buffers, so one instance serves one thread.
/// </summary>
internal sealed class RealFft
{
    private readonly int n;
    private readonly int half;
    private readonly int[] bitReverse;
    private readonly double[] cos;
    private readonly double[] sin;
    private readonly double[] stageCos;
    private readonly double[] stageSin;
    private readonly double[] re;
    private readonly double[] im;

    public RealFft(int length)
    {
        n = length;
        half = length / 2;
        int bits = (int)Math.Log2(half);
        bitReverse = new int[half];
        for (int i = 0; i < half; i++)
        {
            int r = 0;
            for (int b = 0; b < bits; b++)
                r |= ((i >> b) & 1) << (bits - 1 - b);
            bitReverse[i] = r;
        }
        // Twiddles of the full length n: the half-length FFT uses every other one, the real-split step all of them.
        cos = new double[half];
        sin = new double[half];
        for (int k = 0; k < half; k++)
        {
            cos[k] = Math.Cos(2 * Math.PI * k / n);
            sin[k] = Math.Sin(2 * Math.PI * k / n);
        }
        // The butterflies of the stage with half-size m read their m twiddles from [m, 2m), in order, not strided.
        stageCos = new double[half];
        stageSin = new double[half];
        for (int m = 1; m < half; m <<= 1)
        {
            for (int k = 0; k < m; k++)
            {
                stageCos[m + k] = cos[k * (half / m)];
                stageSin[m + k] = -sin[k * (half / m)];
            }
        }
        re = new double[half];
        im = new double[half];
    }

    /// <summary>|X[k]|² · scale for k = 0..n/2 of the real frame <paramref name="frame"/> (length n).</summary>
    public void Power(ReadOnlySpan<double> frame, Span<double> power, double scale)
    {
        Span<double> re = this.re, im = this.im;
        for (int i = 0; i < half; i++)
        {
            int j = bitReverse[i];
            re[j] = frame[2 * i];
            im[j] = frame[2 * i + 1];
        }
        for (int span = 1; span < half; span <<= 1)
        {
            ReadOnlySpan<double> wrs = stageCos.AsSpan(span, span), wis = stageSin.AsSpan(span, span);
            for (int start = 0; start < half; start += 2 * span)
            {
                for (int k = 0; k < span; k++)
                {
                    double wr = wrs[k], wi = wis[k];
                    int a = start + k, b = a + span;
                    double tr = wr * re[b] - wi * im[b];
                    double ti = wr * im[b] + wi * re[b];
                    re[b] = re[a] - tr;
                    im[b] = im[a] - ti;
                    re[a] += tr;
                    im[a] += ti;
                }
            }
        }
        // X[k] = E[k] + e^{-2πik/n} O[k], with E and O the spectra of the even and odd samples recovered from Z = E + iO.
        power[0] = (re[0] + im[0]) * (re[0] + im[0]) * scale;
        power[half] = (re[0] - im[0]) * (re[0] - im[0]) * scale;
        for (int k = 1; k < half; k++)
        {
            double zr = re[k], zi = im[k], cr = re[half - k], ci = -im[half - k];
            double er = 0.5 * (zr + cr), ei = 0.5 * (zi + ci);
            double or = 0.5 * (zi - ci), oi = -0.5 * (zr - cr);
            double wr = cos[k], wi = -sin[k];
            double xr = er + wr * or - wi * oi;
            double xi = ei + wr * oi + wi * or;
            power[k] = (xr * xr + xi * xi) * scale;
        }
    }
}
