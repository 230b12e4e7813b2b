namespace LLark.Encoder.Engine.Spectral;

/// <summary>
/// The frames of <see cref="SpectralDsp.PowerSpectrogram"/> one at a time, for a caller that reduces each frame as it
/// comes and so never needs the whole spectrogram (for a full context, far larger than the clip). An instance holds
/// scratch buffers, so one instance serves one thread.
/// </summary>
internal sealed class ShortTimePower
{
    private readonly int fftSize;
    private readonly int hop;
    private readonly double[] window;
    private readonly double scale;
    private readonly RealFft fft;
    private readonly double[] frame;

    public ShortTimePower(int fftSize, int hop)
    {
        this.fftSize = fftSize;
        this.hop = hop;
        window = SpectralDsp.Hann(fftSize);
        scale = 4.0 / (window.Sum() * window.Sum());
        fft = new RealFft(fftSize);
        frame = new double[fftSize];
    }

    /// <summary>Values a frame's spectrum has: n/2 + 1.</summary>
    public int Bins => fftSize / 2 + 1;

    /// <summary>Frame <paramref name="s"/>'s power spectrum, centred on sample s·hop + hop/2, into <paramref name="power"/> (<see cref="Bins"/> long).</summary>
    public void Frame(ReadOnlySpan<float> signal, int s, Span<double> power)
    {
        long start = (long)s * hop + hop / 2 - fftSize / 2;
        for (int i = 0; i < fftSize; i++)
        {
            long at = start + i;
            frame[i] = at >= 0 && at < signal.Length ? signal[(int)at] * window[i] : 0;
        }
        fft.Power(frame, power, scale);
    }
}
