using System.Buffers;

namespace LLark.Encoder.Engine.Audio;

/// <summary>The audio front end's signal processing, as pure functions over float arrays.</summary>
public static class AudioDsp
{
    /// <summary>Mean of the channels, sample by sample (librosa's <c>to_mono</c>).</summary>
    public static float[] Downmix(IReadOnlyList<float[]> channels)
    {
        ArgumentNullException.ThrowIfNull(channels);
        if (channels.Count == 0)
            return [];
        if (channels.Count == 1)
            return (float[])channels[0].Clone();
        int frames = channels[0].Length;
        var mono = new float[frames];
        for (int i = 0; i < frames; i++)
        {
            double sum = 0;
            for (int c = 0; c < channels.Count; c++)
                sum += channels[c][i];
            mono[i] = (float)(sum / channels.Count);
        }
        return mono;
    }

    /// <summary>Divides by max |x| when it is above 0; silence stays silence.</summary>
    public static void PeakNormalise(Span<float> samples)
    {
        float peak = 0;
        foreach (float x in samples)
            peak = Math.Max(peak, Math.Abs(x));
        DivideByPeak(samples, peak);
    }

    /// <summary>Divides by <paramref name="peak"/> (max |x| of a whole clip, of which these may be a part) when it is above 0 and finite.</summary>
    public static void DivideByPeak(Span<float> samples, float peak)
    {
        if (!(peak > 0) || float.IsInfinity(peak))
            return;
        for (int i = 0; i < samples.Length; i++)
            samples[i] /= peak;
    }

    /// <summary>
    /// Rational polyphase resampling with a Kaiser-windowed sinc low-pass, the filter and alignment of
    /// <c>scipy.signal.resample_poly</c> (which librosa's soxr_hq approximates): for rates with ratio up/down in
    /// lowest terms, a (20·max(up, down) + 1)-tap filter with cutoff 1/max(up, down) of Nyquist, Kaiser β = 5,
    /// centred so output sample m lines up with input time m·down/up. Output length ceil(n·up/down).
    /// </summary>
    public static float[] Resample(ReadOnlySpan<float> input, int fromRate, int toRate, double kaiserBeta = 5.0, int halfWidthZeros = 10)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(fromRate);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(toRate);
        if (fromRate == toRate)
            return input.ToArray();
        var resampler = new PolyphaseResampler(fromRate, toRate, keep: long.MaxValue, inputHint: input.Length, kaiserBeta, halfWidthZeros);
        resampler.Push(input);
        resampler.Finish();
        return resampler.Kept();
    }

    /// <summary>scipy's <c>firwin(taps, cutoff, window=('kaiser', beta))</c>: windowed sinc, unit gain at DC.</summary>
    internal static double[] KaiserLowPass(int taps, double cutoff, double beta)
    {
        var h = new double[taps];
        double alpha = (taps - 1) / 2.0;
        double i0Beta = BesselI0(beta);
        double sum = 0;
        for (int n = 0; n < taps; n++)
        {
            double x = n - alpha;
            double sinc = x == 0 ? 1 : Math.Sin(Math.PI * cutoff * x) / (Math.PI * cutoff * x);
            double ratio = taps == 1 ? 0 : 2.0 * n / (taps - 1) - 1;
            double window = BesselI0(beta * Math.Sqrt(Math.Max(0, 1 - ratio * ratio))) / i0Beta;
            h[n] = cutoff * sinc * window;
            sum += h[n];
        }
        for (int n = 0; n < taps; n++)
            h[n] /= sum;
        return h;
    }

    /// <summary>Modified Bessel function of the first kind, order 0, by its power series.</summary>
    private static double BesselI0(double x)
    {
        double term = 1, sum = 1, quarter = x * x / 4;
        for (int k = 1; k < 200 && term > sum * 1e-17; k++)
        {
            term *= quarter / ((double)k * k);
            sum += term;
        }
        return sum;
    }

    internal static int Gcd(int a, int b)
    {
        while (b != 0)
            (a, b) = (b, a % b);
        return a;
    }
}

/// <summary>A clip ready for the encoder: mono, at the model's rate, peak-normalised, at most one context long.</summary>
public sealed record PreparedAudio(float[] Samples, int SampleRate, double SourceSeconds, int SourceSampleRate, int SourceChannels, AudioFormat Format)
{
    /// <summary>The samples zero-padded (or cut) to exactly <paramref name="contextSamples"/>.</summary>
    public float[] PaddedTo(int contextSamples)
    {
        var padded = new float[contextSamples];
        Samples.AsSpan(0, Math.Min(Samples.Length, contextSamples)).CopyTo(padded);
        return padded;
    }
}

/// <summary>Decode, downmix to mono, resample, peak-normalise, cut to the context: LLark's audio front end.</summary>
public static class AudioFrontEnd
{
    /// <param name="bytes">An encoded clip in any supported format.</param>
    /// <param name="sampleRate">The model's rate (44,100 Hz for Jukebox).</param>
    /// <param name="contextSamples">Samples the model sees at once (1,048,576 for 5b); longer clips are cut.</param>
    /// <param name="limits">Bounds on the decoding work.</param>
    public static PreparedAudio Prepare(byte[] bytes, int sampleRate, int contextSamples, AudioLimits? limits = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(contextSamples);
        // The clip is read, downmixed and resampled a chunk at a time and only the first context is stored. All of it is
        // still read: LLark normalises by the whole clip's peak before cutting, and the embedding id hashes the result.
        using AudioReader reader = AudioDecoder.Open(bytes, limits);
        var pipe = new FrontEndPipe(reader, sampleRate, contextSamples);
        while (pipe.Step())
        {
        }
        return pipe.Finish();
    }
}

/// <summary>
/// The front end's steps over an opened clip, one chunk at a time: shared by the whole-file path and by an upload
/// decoded as it arrives (<see cref="AudioUpload"/>), so that both give the same samples, bit for bit.
/// </summary>
internal sealed class FrontEndPipe(AudioReader reader, int sampleRate, int contextSamples)
{
    private readonly PolyphaseResampler resampler = new(reader.SampleRate, sampleRate, keep: contextSamples, inputHint: reader.FramesDeclared);
    // From the shared pool, given back by Finish: concurrent and successive clips share a few.
    private float[] mono = ArrayPool<float>.Shared.Rent(AudioReader.ChunkFrames);

    public AudioReader Reader => reader;

    /// <summary>Reads, downmixes and resamples the next chunk; false at the end of the clip.</summary>
    public bool Step()
    {
        int frames = reader.ReadMono(mono);
        if (frames == 0) return false;
        resampler.Push(mono.AsSpan(0, frames));
        return true;
    }

    /// <summary>The kept context, normalised by the whole clip's peak, once <see cref="Step"/> has returned false.</summary>
    public PreparedAudio Finish()
    {
        ArrayPool<float>.Shared.Return(mono);
        mono = [];
        resampler.Finish();
        float[] samples = resampler.Kept();
        AudioDsp.DivideByPeak(samples, resampler.Peak);
        return new PreparedAudio(samples, sampleRate, (double)reader.FramesRead / reader.SampleRate, reader.SampleRate, reader.Channels, reader.Format);
    }
}
