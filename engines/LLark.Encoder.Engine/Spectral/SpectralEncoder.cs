using System.Globalization;
using LLark.Encoder.Engine.Model;

namespace LLark.Encoder.Engine.Spectral;

/// <summary>
/// An encoder with no learned weights: per frame, log-mel energies, chroma, onset strength and a local tempogram
/// (<see cref="SpectralEncoderConfig"/> has the settings, the engine's README the formulas). Frame t covers samples
/// [t·hop, (t + 1)·hop); a clip of n samples gives floor(n / hop) frames and a trailing part frame is dropped.
/// </summary>
public sealed class SpectralEncoder : IAudioEncoder
{
    /// <summary>LLark's Jukebox context: 2^20 samples at 44.1 kHz, 23.78 s.</summary>
    private const double ContextSeconds = 1_048_576 / 44100.0;

    private readonly SparseFilter[] mel;
    private readonly double[] chroma;
    private readonly double[] tempi;

    public SpectralEncoder(SpectralEncoderConfig? config = null)
    {
        Config = config ?? new SpectralEncoderConfig();
        Config.Validate();
        mel = SpectralDsp.MelFilterbank(Config.SampleRate, Config.FftSize, Config.MelBands, Config.MelFmin, Config.MelFmax);
        chroma = SpectralDsp.ChromaFilterbank(Config.SampleRate, Config.FftSize, Config.ChromaCenterOctave, Config.ChromaOctaveWidth);
        tempi = SpectralDsp.TempoGrid(Config.TempoMinBpm, Config.TempoBinsPerOctave, Config.TempoBins);
        Configuration = Config.ToJson();
    }

    public SpectralEncoderConfig Config { get; }

    public string Family => "spectral";

    public string ModelId => string.Create(CultureInfo.InvariantCulture, $"{Config.Version}/fps{Config.Fps:0.###}");

    public string Configuration { get; }

    public int SampleRate => Config.SampleRate;

    public int ContextSamples => (int)Math.Round(ContextSeconds * Config.SampleRate);

    public double Fps => Config.Fps;

    public double EffectiveFps => Config.EffectiveFps;

    public int Width => Config.Width;

    public int PreferredBatchSize => 1;

    /// <summary>No layers: 0.</summary>
    public int Layer => 0;

    /// <summary>The tempo of each tempogram value, BPM, in the order of the frame's last block.</summary>
    public IReadOnlyList<double> Tempi => tempi;

    public string? TooShort(long samples) =>
        samples >= Config.Hop ? null : $"the clip has {samples} samples; one frame needs {Config.Hop} ({1 / Config.EffectiveFps:0.###} s at {Config.SampleRate} Hz)";

    public IReadOnlyList<AudioEmbedding> EmbedBatch(IReadOnlyList<float[]> clips, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(clips);
        var embeddings = new List<AudioEmbedding>(clips.Count);
        foreach (float[] clip in clips)
        {
            ct.ThrowIfCancellationRequested();
            embeddings.Add(Embed(clip));
        }
        return embeddings;
    }

    /// <summary>The frames of one clip: [floor(n / hop), Width], blocks in the order log-mel, chroma, onset, tempogram.</summary>
    public AudioEmbedding Embed(ReadOnlySpan<float> samples)
    {
        if (TooShort(samples.Length) is string reason)
            throw new ArgumentException(reason, nameof(samples));
        if (samples.Length > ContextSamples)
            samples = samples[..ContextSamples];
        SpectralEncoderConfig c = Config;
        int frames = samples.Length / c.Hop, sub = c.Subframes, subframes = frames * sub;
        int bins = c.FftSize / 2 + 1, bands = c.MelBands, width = c.Width;
        // The spectrogram is reduced frame by frame as it is computed: kept whole it would be many times the clip,
        // a large-object-heap array for every encode. Each step below does its arithmetic in the order a whole-array
        // pass did, so the frames are the same to the bit.
        var stft = new ShortTimePower(c.FftSize, c.SubHop);
        var power = new double[sub * bins];
        var melPower = new double[sub * bands];
        var logMel = new double[bands];
        var previousLogMel = new double[bands];
        var onset = new double[subframes];
        var values = new float[frames * width];
        var framePower = new double[bins];
        var pitchClasses = new double[SpectralEncoderConfig.ChromaBins];
        for (int t = 0; t < frames; t++)
        {
            Span<float> row = values.AsSpan(t * width, width);
            for (int j = 0; j < sub; j++)
            {
                int s = t * sub + j;
                Span<double> spectrum = power.AsSpan(j * bins, bins);
                stft.Frame(samples, s, spectrum);
                for (int m = 0; m < bands; m++)
                {
                    melPower[j * bands + m] = mel[m].Apply(spectrum);
                    logMel[m] = SpectralDsp.PowerToDb(melPower[j * bands + m], c.MelFloorDb);
                }
                if (s > 0)
                    onset[s] = SpectralDsp.OnsetStrength(previousLogMel, logMel);
                (previousLogMel, logMel) = (logMel, previousLogMel);
            }

            // The frame's energies are the mean over its STFT frames: a 25 fps summary of the 75 Hz analysis.
            for (int m = 0; m < bands; m++)
            {
                double sum = 0;
                for (int j = 0; j < sub; j++)
                    sum += melPower[j * bands + m];
                row[m] = (float)((SpectralDsp.PowerToDb(sum / sub, c.MelFloorDb) - c.MelOffsetDb) / c.MelScaleDb);
            }

            Array.Clear(framePower);
            for (int j = 0; j < sub; j++)
            {
                ReadOnlySpan<double> spectrum = power.AsSpan(j * bins, bins);
                for (int k = 0; k < bins; k++)
                    framePower[k] += spectrum[k];
            }
            double peak = 0;
            for (int p = 0; p < SpectralEncoderConfig.ChromaBins; p++)
            {
                ReadOnlySpan<double> filter = chroma.AsSpan(p * bins, bins);
                double sum = 0;
                for (int k = 0; k < bins; k++)
                    sum += filter[k] * framePower[k];
                pitchClasses[p] = sum;
                peak = Math.Max(peak, sum);
            }
            // Max-normalised as librosa's chroma_stft; a frame with no energy in the chroma range stays zero.
            for (int p = 0; p < SpectralEncoderConfig.ChromaBins; p++)
                row[bands + p] = peak > 1e-20 ? (float)(pitchClasses[p] / peak) : 0f;
        }

        // Onset and tempo look across frames, so they follow once the whole onset envelope is known.
        var centres = new int[frames];
        for (int t = 0; t < frames; t++)
            centres[t] = t * sub + sub / 2;
        int halfWindow = (int)Math.Round(c.TempogramSeconds * c.OnsetRate / 2);
        double[] smoothed = SpectralDsp.GaussianSmooth(onset, c.OnsetSmoothingSeconds * c.OnsetRate);
        double[] gram = SpectralDsp.Tempogram(smoothed, c.OnsetRate, centres, halfWindow, tempi);
        for (int t = 0; t < frames; t++)
        {
            Span<float> row = values.AsSpan(t * width, width);
            double flux = 0;
            for (int j = 0; j < sub; j++)
                flux += onset[t * sub + j];
            row[bands + SpectralEncoderConfig.ChromaBins] = (float)(flux / sub / c.OnsetScaleDb);

            int tempoAt = bands + SpectralEncoderConfig.ChromaBins + 1;
            for (int k = 0; k < tempi.Length; k++)
                row[tempoAt + k] = (float)gram[t * tempi.Length + k];
        }
        return new AudioEmbedding(values, frames, width, c.EffectiveFps, subframes);
    }

    /// <summary>Nothing to release: the filterbanks are managed arrays; the seam is disposable for families with native weights.</summary>
    public void Dispose()
    {
    }
}
