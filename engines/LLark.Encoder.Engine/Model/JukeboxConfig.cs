using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace LLark.Encoder.Engine.Model;

/// <summary>
/// The VQ-VAE hyper-parameters that shape its top-level encoder, under the names Jukebox's <c>hps</c> uses.
/// </summary>
public sealed record VqvaeConfig
{
    [JsonPropertyName("levels")] public int Levels { get; init; } = 3;
    [JsonPropertyName("downs_t")] public int[] DownsT { get; init; } = [3, 2, 2];
    [JsonPropertyName("strides_t")] public int[] StridesT { get; init; } = [2, 2, 2];
    [JsonPropertyName("emb_width")] public int EmbWidth { get; init; } = 64;
    [JsonPropertyName("l_bins")] public int CodebookSize { get; init; } = 2048;
    [JsonPropertyName("width")] public int Width { get; init; } = 32;
    [JsonPropertyName("depth")] public int Depth { get; init; } = 4;
    [JsonPropertyName("m_conv")] public double MConv { get; init; } = 1.0;
    [JsonPropertyName("dilation_growth_rate")] public int DilationGrowthRate { get; init; } = 3;

    /// <summary>When set, dilations restart every this many resnet units; null (Jukebox's default) never restarts.</summary>
    [JsonPropertyName("dilation_cycle")] public int? DilationCycle { get; init; }
    [JsonPropertyName("hvqvae_multipliers")] public int[] Multipliers { get; init; } = [2, 1, 1];

    /// <summary>Index of the top level, the only one the embedding uses.</summary>
    [JsonIgnore] public int TopLevel => Levels - 1;
    [JsonIgnore] public int TopWidth => Width * Multipliers[TopLevel];
    [JsonIgnore] public int TopDepth => Depth * Multipliers[TopLevel];
    [JsonIgnore] public int ResnetStateWidth => (int)(MConv * TopWidth);

    /// <summary>Samples per top-level code: the product of every level's stride to the power of its downsampling steps.</summary>
    [JsonIgnore]
    public int HopLength => Enumerable.Range(0, Levels).Aggregate(1, (hop, l) => hop * (int)Math.Pow(StridesT[l], DownsT[l]));

    /// <summary>Dilation of resnet unit <paramref name="unit"/>: growth^unit, restarting each cycle.</summary>
    public int Dilation(int unit) => (int)Math.Pow(DilationGrowthRate, DilationCycle is int cycle ? unit % cycle : unit);

    internal void Validate(string origin)
    {
        Require(Levels >= 1, "levels must be at least 1", origin);
        Require(DownsT.Length >= Levels && StridesT.Length >= Levels && Multipliers.Length >= Levels,
            "downs_t, strides_t and hvqvae_multipliers need one entry per level", origin);
        Require(DownsT.Take(Levels).All(d => d >= 1) && StridesT.Take(Levels).All(s => s >= 1), "downs_t and strides_t must be positive", origin);
        Require(EmbWidth > 0 && CodebookSize > 0 && Width > 0 && Depth > 0 && MConv > 0, "emb_width, l_bins, width, depth and m_conv must be positive", origin);
        Require(DilationGrowthRate >= 1, "dilation_growth_rate must be at least 1", origin);
        Require(DilationCycle is null or > 0, "dilation_cycle must be positive or null", origin);
    }

    internal static void Require(bool ok, string what, string origin)
    {
        if (!ok) throw new EncoderConfigException($"{origin}: {what}");
    }
}

/// <summary>The top-level prior's hyper-parameters, under the names Jukebox's <c>hps</c> uses.</summary>
public sealed record PriorConfig
{
    [JsonPropertyName("n_ctx")] public int NCtx { get; init; } = 8192;
    [JsonPropertyName("prior_width")] public int Width { get; init; } = 4800;

    /// <summary>Blocks of the whole prior; the encoder runs only the first <see cref="JukeboxEncoderConfig.Layers"/>.</summary>
    [JsonPropertyName("prior_depth")] public int Depth { get; init; } = 72;
    [JsonPropertyName("heads")] public int Heads { get; init; } = 8;

    /// <summary>2: layers cycle block, transposed-block and previous-block attention. The only order the top prior uses.</summary>
    [JsonPropertyName("attn_order")] public int AttnOrder { get; init; } = 2;

    /// <summary>The context is cut into this many blocks of <see cref="BlockCtx"/> positions.</summary>
    [JsonPropertyName("blocks")] public int Blocks { get; init; } = 128;
    [JsonPropertyName("m_attn")] public double MAttn { get; init; } = 0.25;
    [JsonPropertyName("m_mlp")] public double MMlp { get; init; } = 1.0;

    /// <summary>(genres, artists) rows of the label embeddings.</summary>
    [JsonPropertyName("y_bins")] public int[] YBins { get; init; } = [120, 4111];
    [JsonPropertyName("t_bins")] public int TBins { get; init; } = 128;
    [JsonPropertyName("max_bow_genre_size")] public int MaxBowGenreSize { get; init; } = 5;
    [JsonPropertyName("min_duration")] public double MinDuration { get; init; } = 60.0;
    [JsonPropertyName("max_duration")] public double MaxDuration { get; init; } = 600.0;
    [JsonPropertyName("sr")] public int SampleRate { get; init; } = 44100;
    [JsonPropertyName("res_scale")] public bool ResScale { get; init; }

    [JsonIgnore] public int BlockCtx => NCtx / Blocks;
    [JsonIgnore] public int AttnWidth => (int)(Width * MAttn);
    [JsonIgnore] public int MlpWidth => (int)(Width * MMlp);
    [JsonIgnore] public int HeadDim => AttnWidth / Heads;
    [JsonIgnore] public int GenreBins => YBins[0];
    [JsonIgnore] public int ArtistBins => YBins[1];

    /// <summary>Kind of attention of 0-based layer <paramref name="layer"/>.</summary>
    public static AttentionKind AttentionOf(int layer) => (AttentionKind)(layer % 3);

    internal void Validate(string origin)
    {
        void Require(bool ok, string what) => VqvaeConfig.Require(ok, what, origin);
        Require(NCtx > 0 && Width > 0 && Depth > 0 && Heads > 0 && Blocks > 0, "n_ctx, prior_width, prior_depth, heads and blocks must be positive");
        Require(NCtx % Blocks == 0, $"n_ctx {NCtx} is not a multiple of blocks {Blocks}");
        Require(AttnOrder == 2, $"attn_order {AttnOrder} is not supported (the top prior uses 2)");
        Require(AttnWidth > 0 && AttnWidth % Heads == 0, $"attention width {AttnWidth} (prior_width x m_attn) is not a multiple of heads {Heads}");
        Require(MlpWidth > 0, "m_mlp must be positive");
        Require(YBins.Length == 2 && YBins.All(b => b > 0), "y_bins must be (genres, artists)");
        Require(TBins > 0 && MaxBowGenreSize > 0, "t_bins and max_bow_genre_size must be positive");
        Require(MinDuration >= 0 && MaxDuration > MinDuration, "min_duration must be below max_duration");
        Require(SampleRate > 0, "sr must be positive");
        Require(!ResScale, "res_scale=true is not supported (the top prior has none)");
    }
}

/// <summary>Which of the three sparse attentions a layer of the top prior runs (Jukebox attn_func 1, 2, 3).</summary>
public enum AttentionKind
{
    /// <summary>Causal within the query's own block.</summary>
    Block = 0,

    /// <summary>Causal over the positions at the same offset within every block.</summary>
    TransposeBlock = 1,

    /// <summary>All positions of the previous block; the first block sees zeros.</summary>
    PreviousBlock = 2,
}

/// <summary>
/// What the Jukebox top-level embedding needs to know: the VQ-VAE and prior hyper-parameters and how many prior
/// blocks to run. Read from the converted folder's <c>jukebox_encoder.json</c>, from the checkpoints' own
/// <c>hps</c>, or from a preset; sizes are always checked against the tensors' shapes.
/// </summary>
public sealed record JukeboxEncoderConfig
{
    /// <summary>The 5b top level (the checkpoints LLark used): width 4800, 72 blocks, n_ctx 8192, embedding after block 36.</summary>
    public static JukeboxEncoderConfig Preset5b { get; } = new() { Vqvae = new VqvaeConfig(), Prior = new PriorConfig(), Layers = 36 };

    [JsonPropertyName("vqvae")] public VqvaeConfig Vqvae { get; init; } = new();
    [JsonPropertyName("prior")] public PriorConfig Prior { get; init; } = new();

    /// <summary>Prior blocks to run; the embedding is the residual stream after the last of them.</summary>
    [JsonPropertyName("layers")] public int Layers { get; init; } = 36;

    /// <summary>Samples of 44.1 kHz audio the prior sees at once: n_ctx x hop (1,048,576 for 5b).</summary>
    [JsonIgnore] public int ContextSamples => Prior.NCtx * Vqvae.HopLength;

    /// <summary>Activation frames per second of audio (344.53125 for 5b).</summary>
    [JsonIgnore] public double TokensPerSecond => (double)Prior.SampleRate / Vqvae.HopLength;

    public static JukeboxEncoderConfig Preset(string name) => name.Trim().ToLowerInvariant() switch
    {
        "5b" => Preset5b,
        _ => throw new EncoderConfigException($"unknown Jukebox preset '{name}' (known: 5b)"),
    };

    public void Validate(string origin = "jukebox config")
    {
        Vqvae.Validate(origin);
        Prior.Validate(origin);
        VqvaeConfig.Require(Layers >= 1 && Layers <= Prior.Depth, $"layers {Layers} must be between 1 and prior_depth {Prior.Depth}", origin);
    }

    public JukeboxEncoderConfig WithLayers(int? layers) => layers is int n ? this with { Layers = n } : this;

    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true, NumberHandling = JsonNumberHandling.AllowReadingFromString };

    public string ToJson() => JsonSerializer.Serialize(this, Options);

    public static JukeboxEncoderConfig FromJson(string json, string origin = "jukebox_encoder.json")
    {
        try
        {
            var config = JsonSerializer.Deserialize<JukeboxEncoderConfig>(json, Options) ?? throw new EncoderConfigException($"{origin}: empty config");
            config.Validate(origin);
            return config;
        }
        catch (JsonException e)
        {
            throw new EncoderConfigException($"{origin}: not a valid encoder config ({e.Message})", e);
        }
    }

    /// <summary>
    /// Builds a config from Jukebox <c>hps</c> dictionaries (as a checkpoint's pickle holds them, or as JSON objects).
    /// Keys the encoder does not use are ignored; keys that are absent keep the 5b values.
    /// </summary>
    public static JukeboxEncoderConfig FromHps(JsonNode? vqvaeHps, JsonNode? priorHps, int layers, string origin)
    {
        try
        {
            var vqvae = vqvaeHps?.Deserialize<VqvaeConfig>(Options) ?? new VqvaeConfig();
            var prior = priorHps?.Deserialize<PriorConfig>(Options) ?? new PriorConfig();
            var config = new JukeboxEncoderConfig { Vqvae = vqvae, Prior = prior, Layers = layers };
            config.Validate(origin);
            return config;
        }
        catch (JsonException e)
        {
            throw new EncoderConfigException($"{origin}: hps cannot be read ({e.Message})", e);
        }
    }

    /// <summary>Turns a value unpickled from a checkpoint (dicts, lists, tuples, numbers, strings) into JSON.</summary>
    public static JsonNode? PickledToJson(object? value) => value switch
    {
        null => null,
        bool b => JsonValue.Create(b),
        long l => JsonValue.Create(l),
        int i => JsonValue.Create(i),
        double d => double.IsFinite(d) ? JsonValue.Create(d) : JsonValue.Create(d.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        string s => JsonValue.Create(s),
        System.Numerics.BigInteger big => JsonValue.Create(big.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        IEnumerable<KeyValuePair<object, object?>> dict => new JsonObject(dict.Select(kv =>
            new KeyValuePair<string, JsonNode?>(kv.Key.ToString() ?? "", PickledToJson(kv.Value)))),
        System.Collections.IEnumerable list => new JsonArray(list.Cast<object?>().Select(PickledToJson).ToArray()),
        _ => JsonValue.Create(value.ToString()),
    };
}

/// <summary>An encoder configuration that is missing, malformed, or disagrees with the weights.</summary>
public sealed class EncoderConfigException : Exception
{
    public EncoderConfigException(string message) : base(message) { }
    public EncoderConfigException(string message, Exception inner) : base(message, inner) { }
}
