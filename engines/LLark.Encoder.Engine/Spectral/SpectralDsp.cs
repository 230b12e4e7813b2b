namespace LLark.Encoder.Engine.Spectral;

/// <summary>A filterbank row: weights over a run of consecutive FFT bins, the rest zero.</summary>
public sealed record SparseFilter(int FirstBin, double[] Weights)
{
    public double Apply(ReadOnlySpan<double> power)
    {
        double sum = 0;
        ReadOnlySpan<double> bins = power.Slice(FirstBin, Weights.Length);
        for (int i = 0; i < Weights.Length; i++)
            sum += Weights[i] * bins[i];
        return sum;
    }
}

/// <summary>The spectral family's signal processing, as pure functions (librosa's definitions where it has one).</summary>
public static class SpectralDsp
{
    /// <summary>The periodic Hann window (scipy's <c>get_window('hann', n, fftbins=True)</c>, as librosa uses).</summary>
    public static double[] Hann(int n)
    {
        var w = new double[n];
        for (int i = 0; i < n; i++)
            w[i] = 0.5 - 0.5 * Math.Cos(2 * Math.PI * i / n);
        return w;
    }

    /// <summary>
    /// Power spectra of <paramref name="frames"/> Hann-windowed frames, frame s centred on sample s·hop + hop/2 and
    /// zero outside the signal; row-major [frames, n/2 + 1]. Scaled by (2 / Σw)², so a full-scale sine on a bin's
    /// centre has power 1 (0 dB) there.
    /// </summary>
    public static double[] PowerSpectrogram(ReadOnlySpan<float> signal, int fftSize, int hop, int frames)
    {
        var stft = new ShortTimePower(fftSize, hop);
        var power = new double[(long)frames * stft.Bins];
        for (int s = 0; s < frames; s++)
            stft.Frame(signal, s, power.AsSpan(s * stft.Bins, stft.Bins));
        return power;
    }

    /// <summary>Hz to mel on the Slaney scale (librosa's default, htk=False): linear to 1 kHz, logarithmic above.</summary>
    public static double HzToMel(double hz) =>
        hz < 1000 ? hz * 3 / 200 : 15 + Math.Log(hz / 1000) / (Math.Log(6.4) / 27);

    /// <summary>The inverse of <see cref="HzToMel"/>.</summary>
    public static double MelToHz(double mel) =>
        mel < 15 ? mel * 200 / 3 : 1000 * Math.Exp((mel - 15) * (Math.Log(6.4) / 27));

    /// <summary>
    /// librosa's <c>filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm='slaney')</c>: triangles between
    /// n_mels + 2 edges evenly spaced in Slaney mel, each scaled by 2 / (its width in Hz) so every band has unit area.
    /// </summary>
    public static SparseFilter[] MelFilterbank(int sampleRate, int fftSize, int bands, double fmin, double fmax)
    {
        int bins = fftSize / 2 + 1;
        double melMin = HzToMel(fmin), melMax = HzToMel(fmax);
        var edges = new double[bands + 2];
        for (int i = 0; i < edges.Length; i++)
            edges[i] = MelToHz(melMin + (melMax - melMin) * i / (bands + 1));
        var filters = new SparseFilter[bands];
        for (int m = 0; m < bands; m++)
        {
            double lowDiff = edges[m + 1] - edges[m], highDiff = edges[m + 2] - edges[m + 1];
            double norm = 2.0 / (edges[m + 2] - edges[m]);
            var weights = new double[bins];
            int first = bins, last = -1;
            for (int k = 0; k < bins; k++)
            {
                double f = (double)k * sampleRate / fftSize;
                double w = Math.Max(0, Math.Min((f - edges[m]) / lowDiff, (edges[m + 2] - f) / highDiff));
                if (w > 0)
                {
                    weights[k] = w * norm;
                    first = Math.Min(first, k);
                    last = k;
                }
            }
            filters[m] = last < 0 ? new SparseFilter(0, []) : new SparseFilter(first, weights[first..(last + 1)]);
        }
        return filters;
    }

    /// <summary>
    /// librosa's <c>filters.chroma(sr, n_fft, n_chroma=12, ctroct, octwidth, norm=2, base_c=True)</c>: each FFT bin
    /// spreads over the pitch classes by a Gaussian in semitones as wide as the bin (at least one semitone), unit L2
    /// norm per bin, times a Gaussian weighting over octaves centred on <paramref name="centerOctave"/> (octaves above
    /// A0 = 27.5 Hz). Row 0 is C. Row-major [12, n/2 + 1].
    /// </summary>
    public static double[] ChromaFilterbank(int sampleRate, int fftSize, double centerOctave, double octaveWidth)
    {
        const int chroma = 12;
        int bins = fftSize / 2 + 1;
        // librosa computes the bins' pitches over the whole FFT, bin 0 taking a made-up pitch 1.5 octaves below bin 1.
        var pitch = new double[fftSize];
        for (int k = 1; k < fftSize; k++)
            pitch[k] = chroma * Math.Log2((double)k * sampleRate / fftSize / 27.5);
        pitch[0] = pitch[1] - 1.5 * chroma;
        var weights = new double[chroma * bins];
        for (int k = 0; k < bins; k++)
        {
            double width = Math.Max(pitch[k + 1] - pitch[k], 1.0);
            double norm = 0;
            var column = new double[chroma];
            for (int c = 0; c < chroma; c++)
            {
                double d = ((pitch[k] - c + 6 + 10 * chroma) % chroma + chroma) % chroma - 6;
                column[c] = Math.Exp(-0.5 * Math.Pow(2 * d / width, 2));
                norm += column[c] * column[c];
            }
            norm = Math.Sqrt(norm);
            double octave = Math.Exp(-0.5 * Math.Pow((pitch[k] / chroma - centerOctave) / octaveWidth, 2));
            for (int c = 0; c < chroma; c++)
            {
                // Pitch classes above count from A; row (c + 9) mod 12 puts C first, as base_c does.
                weights[(c + 9) % chroma * bins + k] = column[c] / norm * octave;
            }
        }
        return weights;
    }

    /// <summary>10·log10(max(x, 10^(floor/10))): energies in dB with a fixed floor.</summary>
    public static double PowerToDb(double power, double floorDb) =>
        Math.Max(10 * Math.Log10(Math.Max(power, 1e-30)), floorDb);

    /// <summary>
    /// Onset strength (librosa's <c>onset_strength</c> with lag 1): for each frame, the mean over bands of the rise
    /// of the log-mel energies since the frame before, max(0, L[s, m] − L[s−1, m]); frame 0 has none.
    /// </summary>
    public static double[] OnsetStrength(ReadOnlySpan<double> logMel, int frames, int bands)
    {
        var onset = new double[frames];
        for (int s = 1; s < frames; s++)
            onset[s] = OnsetStrength(logMel.Slice((s - 1) * bands, bands), logMel.Slice(s * bands, bands));
        return onset;
    }

    /// <summary>One frame's onset strength: the mean over bands of max(0, <paramref name="current"/> − <paramref name="previous"/>).</summary>
    public static double OnsetStrength(ReadOnlySpan<double> previous, ReadOnlySpan<double> current)
    {
        double sum = 0;
        for (int m = 0; m < current.Length; m++)
            sum += Math.Max(0, current[m] - previous[m]);
        return sum / current.Length;
    }

    /// <summary>
    /// Convolution with a Gaussian of standard deviation <paramref name="sigma"/> samples, cut at ±3σ; near the ends
    /// the weights that fall inside are renormalised to sum to 1. σ = 0 returns a copy.
    /// </summary>
    public static double[] GaussianSmooth(ReadOnlySpan<double> x, double sigma)
    {
        if (!(sigma > 0))
            return x.ToArray();
        int reach = (int)Math.Ceiling(3 * sigma);
        var kernel = new double[2 * reach + 1];
        for (int i = -reach; i <= reach; i++)
            kernel[i + reach] = Math.Exp(-0.5 * i * i / (sigma * sigma));
        var y = new double[x.Length];
        for (int s = 0; s < x.Length; s++)
        {
            double sum = 0, weight = 0;
            for (int i = Math.Max(-reach, -s); i <= Math.Min(reach, x.Length - 1 - s); i++)
            {
                sum += kernel[i + reach] * x[s + i];
                weight += kernel[i + reach];
            }
            y[s] = sum / weight;
        }
        return y;
    }

    /// <summary>The tempi of the tempogram's bins: min·2^(k/bins_per_octave), k = 0..bins − 1.</summary>
    public static double[] TempoGrid(double minBpm, int binsPerOctave, int bins)
    {
        var bpm = new double[bins];
        for (int k = 0; k < bins; k++)
            bpm[k] = minBpm * Math.Pow(2, (double)k / binsPerOctave);
        return bpm;
    }

    /// <summary>
    /// A local tempogram, row-major [centres.Length, bpm.Length]. For each centre c (an index into the onset
    /// envelope o), the window W = [c − h, c + h) within the envelope, with its mean μ removed, is autocorrelated:
    /// r(L) = Σ_{s, s+L ∈ W} (o_s − μ)(o_{s+L} − μ) / Σ_{s ∈ W} (o_s − μ)², so r(0) = 1 and |r| ≤ 1 (0 where the window
    /// is flat); a tempo b reads r at the lag 60·rate/b, linearly interpolated between whole lags. Prefix sums of
    /// o_s·o_{s+L} make each value O(1), so the cost is lags × envelope length, not times the window.
    /// </summary>
    public static double[] Tempogram(ReadOnlySpan<double> onset, double rate, ReadOnlySpan<int> centres, int halfWindow, ReadOnlySpan<double> bpm)
    {
        int n = onset.Length;
        var lagOf = new double[bpm.Length];
        int maxLag = 0;
        for (int k = 0; k < bpm.Length; k++)
        {
            lagOf[k] = 60 * rate / bpm[k];
            maxLag = Math.Max(maxLag, (int)Math.Ceiling(lagOf[k]));
        }
        int minLag = Math.Max(1, (int)Math.Floor(lagOf.Min()));
        var prefix = new double[n + 1];
        var squares = new double[n + 1];
        for (int s = 0; s < n; s++)
        {
            prefix[s + 1] = prefix[s] + onset[s];
            squares[s + 1] = squares[s] + onset[s] * onset[s];
        }
        var windows = new (int From, int To, double Mean, double Energy)[centres.Length];
        for (int t = 0; t < centres.Length; t++)
        {
            int from = Math.Max(0, centres[t] - halfWindow), to = Math.Min(n, centres[t] + halfWindow);
            double count = Math.Max(1, to - from);
            double mean = (prefix[to] - prefix[from]) / count;
            double energy = squares[to] - squares[from] - count * mean * mean;
            windows[t] = (from, to, mean, energy);
        }

        // r at one whole lag for every centre, and at the lag before it: each tempo reads the two whole lags around its
        // own, so its value is final once the larger has been computed, and r never needs every lag at once.
        var gram = new double[centres.Length * bpm.Length];
        var previous = new double[centres.Length];
        var current = new double[centres.Length];
        var products = new double[n + 1];
        for (int lag = minLag; lag <= maxLag; lag++)
        {
            for (int s = 0; s + lag < n; s++)
                products[s + 1] = products[s] + onset[s] * onset[s + lag];
            for (int s = Math.Max(0, n - lag); s < n; s++)
                products[s + 1] = products[s];
            Array.Clear(current);
            for (int t = 0; t < centres.Length; t++)
            {
                var (from, to, mean, energy) = windows[t];
                int last = to - lag;
                if (last <= from || !(energy > 1e-12 * (to - from)))
                    continue;
                double cross = products[last] - products[from];
                double heads = prefix[last] - prefix[from], tails = prefix[to] - prefix[from + lag];
                current[t] = (cross - mean * (heads + tails) + (last - from) * mean * mean) / energy;
            }
            for (int k = 0; k < bpm.Length; k++)
            {
                int below = (int)Math.Floor(lagOf[k]);
                int above = Math.Min(below + 1, maxLag);
                if (above != lag)
                    continue;
                double frac = lagOf[k] - below;
                ReadOnlySpan<double> r = below == lag ? current : previous;
                for (int t = 0; t < centres.Length; t++)
                    gram[t * bpm.Length + k] = (1 - frac) * r[t] + frac * current[t];
            }
            (previous, current) = (current, previous);
        }
        return gram;
    }
}
