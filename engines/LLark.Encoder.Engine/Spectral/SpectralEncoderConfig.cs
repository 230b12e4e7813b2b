using System.Text.Json;
using System.Text.Json.Serialization;
using LLark.Encoder.Engine.Model;

namespace LLark.Encoder.Engine.Spectral;

/// <summary>
/// Every setting of the spectral family. Its canonical JSON is the encoder's <c>Configuration</c>, so a change to any
/// setting, normalisation constants included, gives embeddings a new id.
/// </summary>
public sealed record SpectralEncoderConfig
{
    /// <summary>Names the feature recipe; bump it when the code changes what the same settings compute.</summary>
    [JsonPropertyName("version")] public string Version { get; init; } = "spectral-v1";

    /// <summary>Input rate, 22,050 Hz: everything below 11 kHz that the features read, at half the work of 44.1 kHz.</summary>
    [JsonPropertyName("sample_rate")] public int SampleRate { get; init; } = 22050;

    /// <summary>Frames per second asked for (25, LLark's rate).</summary>
    [JsonPropertyName("fps")] public double Fps { get; init; } = 25;

    /// <summary>
    /// STFT frames per output frame (3): the STFT hops 294 samples, so the onset envelope the tempogram reads runs at
    /// 75 Hz, fine enough to tell 120 from 125 BPM, while the output keeps 25 fps.
    /// </summary>
    [JsonPropertyName("subframes")] public int Subframes { get; init; } = 3;

    /// <summary>FFT length and Hann window, in samples (2,048: 93 ms, 10.8 Hz bins at 22,050 Hz).</summary>
    [JsonPropertyName("n_fft")] public int FftSize { get; init; } = 2048;

    /// <summary>Slaney-scale mel bands (64).</summary>
    [JsonPropertyName("n_mels")] public int MelBands { get; init; } = 64;

    /// <summary>Lowest mel edge, Hz (27.5, A0).</summary>
    [JsonPropertyName("fmin")] public double MelFmin { get; init; } = 27.5;

    /// <summary>Highest mel edge, Hz (11,025, Nyquist at the default rate).</summary>
    [JsonPropertyName("fmax")] public double MelFmax { get; init; } = 11025;

    /// <summary>Floor of the mel energies in dB, re a full-scale sine's bin power (−80).</summary>
    [JsonPropertyName("mel_floor_db")] public double MelFloorDb { get; init; } = -80;

    /// <summary>
    /// Log-mel value = (dB − offset) / scale (−60 and 20): on the synth clips the values average about −0.2 and a
    /// clip's mean stays within ±1.5, the scale of the other blocks (the engine's README has the figures).
    /// </summary>
    [JsonPropertyName("mel_offset_db")] public double MelOffsetDb { get; init; } = -60;

    /// <summary>See <see cref="MelOffsetDb"/>.</summary>
    [JsonPropertyName("mel_scale_db")] public double MelScaleDb { get; init; } = 20;

    /// <summary>librosa's chroma octave weighting: centre octave (5: 880 Hz) and Gaussian width in octaves (2).</summary>
    [JsonPropertyName("chroma_center_octave")] public double ChromaCenterOctave { get; init; } = 5;

    /// <summary>See <see cref="ChromaCenterOctave"/>.</summary>
    [JsonPropertyName("chroma_octave_width")] public double ChromaOctaveWidth { get; init; } = 2;

    /// <summary>Onset value = mean positive log-mel flux (dB per STFT hop) / this scale (3 dB).</summary>
    [JsonPropertyName("onset_scale_db")] public double OnsetScaleDb { get; init; } = 3;

    /// <summary>
    /// Standard deviation of the Gaussian that smooths the onset envelope before the tempogram, seconds (0.03): a beat
    /// whose period is not a whole number of STFT hops lands alternately on two lags; smoothed, its peak stays at its
    /// own tempo instead of moving to the half tempo, whose lag is whole.
    /// </summary>
    [JsonPropertyName("onset_smoothing_seconds")] public double OnsetSmoothingSeconds { get; init; } = 0.03;

    /// <summary>Length of the onset window each frame's tempogram autocorrelates, seconds (8).</summary>
    [JsonPropertyName("tempogram_seconds")] public double TempogramSeconds { get; init; } = 8;

    /// <summary>Slowest tempo of the tempogram, BPM (30).</summary>
    [JsonPropertyName("tempo_min_bpm")] public double TempoMinBpm { get; init; } = 30;

    /// <summary>Fastest tempo of the tempogram, BPM (300).</summary>
    [JsonPropertyName("tempo_max_bpm")] public double TempoMaxBpm { get; init; } = 300;

    /// <summary>Tempogram bins per octave of tempo (16: 4.4 % apart, so a peak is placed within the 4 % of ACC1/2).</summary>
    [JsonPropertyName("tempo_bins_per_octave")] public int TempoBinsPerOctave { get; init; } = 16;

    /// <summary>Samples between STFT frames: the output hop divided by <see cref="Subframes"/>, rounded.</summary>
    [JsonIgnore] public int SubHop => (int)Math.Round(SampleRate / (Fps * Subframes));

    /// <summary>Samples per output frame (882 at the defaults: exactly 25 fps).</summary>
    [JsonIgnore] public int Hop => SubHop * Subframes;

    /// <summary>The rate the frames have: the sample rate over a whole number of samples per frame.</summary>
    [JsonIgnore] public double EffectiveFps => (double)SampleRate / Hop;

    /// <summary>Rate of the onset envelope, Hz.</summary>
    [JsonIgnore] public double OnsetRate => (double)SampleRate / SubHop;

    /// <summary>Pitch classes of the chroma block.</summary>
    public const int ChromaBins = 12;

    /// <summary>Tempogram bins: the tempi min·2^(k/bins_per_octave) up to max.</summary>
    [JsonIgnore] public int TempoBins => (int)Math.Floor(TempoBinsPerOctave * Math.Log2(TempoMaxBpm / TempoMinBpm) + 1e-9) + 1;

    /// <summary>Values per frame: log-mel, chroma, onset strength, tempogram.</summary>
    [JsonIgnore] public int Width => MelBands + ChromaBins + 1 + TempoBins;

    public void Validate()
    {
        Require(!string.IsNullOrWhiteSpace(Version), "version must be set");
        Require(SampleRate > 0, "sample_rate must be positive");
        Require(Fps > 0 && Subframes >= 1, "fps and subframes must be positive");
        Require(SubHop >= 1, "fps × subframes must be below sample_rate");
        Require(FftSize >= 16 && (FftSize & (FftSize - 1)) == 0, "n_fft must be a power of two, at least 16");
        Require(MelBands >= 1, "n_mels must be positive");
        Require(MelFmin >= 0 && MelFmax > MelFmin && MelFmax <= SampleRate / 2.0, "fmin must be below fmax, which must be at most Nyquist");
        Require(MelScaleDb > 0 && OnsetScaleDb > 0, "mel_scale_db and onset_scale_db must be positive");
        Require(OnsetSmoothingSeconds >= 0, "onset_smoothing_seconds must not be negative");
        Require(ChromaOctaveWidth > 0, "chroma_octave_width must be positive");
        Require(TempoMinBpm > 0 && TempoMaxBpm > TempoMinBpm && TempoBinsPerOctave >= 1, "tempo range and bins must be positive");
        Require(60 * OnsetRate / TempoMaxBpm >= 1, "tempo_max_bpm must be a lag of at least one STFT hop");
        Require(TempogramSeconds * TempoMinBpm / 60 >= 1, "tempogram_seconds must hold one beat at tempo_min_bpm");
    }

    private static readonly JsonSerializerOptions Options = new() { NumberHandling = JsonNumberHandling.AllowReadingFromString };

    /// <summary>One line of JSON in declaration order: the same settings always give the same text.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Options);

    /// <summary>The file that makes a folder a spectral encoder (<see cref="AudioEncoderLoader"/>).</summary>
    public const string FileName = "spectral_encoder.json";

    public static SpectralEncoderConfig FromJson(string json)
    {
        try
        {
            var config = JsonSerializer.Deserialize<SpectralEncoderConfig>(json, Options) ?? throw new EncoderConfigException("spectral config: empty");
            config.Validate();
            return config;
        }
        catch (JsonException e)
        {
            throw new EncoderConfigException($"spectral config: not valid JSON ({e.Message})", e);
        }
    }

    private static void Require(bool condition, string message)
    {
        if (!condition)
            throw new EncoderConfigException($"spectral config: {message}");
    }
}
