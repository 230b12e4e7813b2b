using System.Text.Json;
using System.Text.Json.Serialization;

namespace LLark.Language.Engine.Model;

/// <summary>
/// The architecture of a Llama checkpoint, read from its Hugging Face <c>config.json</c>. Nothing about the
/// model's size is hard-coded anywhere else.
/// </summary>
public sealed record LlamaConfig
{
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; }
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; }
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; }
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; }
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; }

    /// <summary>Defaults to <see cref="NumAttentionHeads"/> (plain multi-head attention) when absent.</summary>
    [JsonPropertyName("num_key_value_heads")] public int? NumKeyValueHeads { get; init; }

    /// <summary>Llama-2 uses 1e-5 or 1e-6 depending on the release; always read, never assumed.</summary>
    [JsonPropertyName("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-6;
    [JsonPropertyName("rope_theta")] public double RopeTheta { get; init; } = 10000.0;
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 2048;
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; } = 1;

    /// <summary>An id or a list of ids; any of them ends generation.</summary>
    [JsonPropertyName("eos_token_id")] public JsonElement? EosTokenIdRaw { get; init; }
    [JsonPropertyName("pad_token_id")] public int? PadTokenId { get; init; }
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; init; }
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "silu";
    [JsonPropertyName("torch_dtype")] public string? TorchDtype { get; init; }
    [JsonPropertyName("model_type")] public string? ModelType { get; init; }
    [JsonPropertyName("attention_bias")] public bool AttentionBias { get; init; }
    [JsonPropertyName("mlp_bias")] public bool MlpBias { get; init; }
    [JsonPropertyName("rope_scaling")] public JsonElement? RopeScaling { get; init; }

    [JsonIgnore] public int KeyValueHeads => NumKeyValueHeads ?? NumAttentionHeads;
    [JsonIgnore] public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>Parameters of a Llama of this shape: embeddings, layers, final norm and (unless tied) the head.</summary>
    [JsonIgnore]
    public long ParameterCount
    {
        get
        {
            long dim = HiddenSize, kv = (long)KeyValueHeads * HeadDim;
            long layer = dim * (dim + 2 * kv) + dim * dim + 3L * dim * IntermediateSize + 2 * dim;
            return NumHiddenLayers * layer + (TieWordEmbeddings ? 1 : 2) * (long)VocabSize * dim + dim;
        }
    }

    [JsonIgnore]
    public IReadOnlyList<int> EosTokenIds => EosTokenIdRaw switch
    {
        { ValueKind: JsonValueKind.Number } e => [e.GetInt32()],
        { ValueKind: JsonValueKind.Array } e => e.EnumerateArray().Select(x => x.GetInt32()).ToArray(),
        _ => [],
    };

    public static LlamaConfig FromFile(string path)
    {
        if (!File.Exists(path))
            throw new ModelConfigException($"config not found: {path}");
        try
        {
            using FileStream stream = File.OpenRead(path);
            LlamaConfig config = JsonSerializer.Deserialize<LlamaConfig>(stream)
                ?? throw new ModelConfigException($"{path}: empty config");
            config.Validate(path);
            return config;
        }
        catch (JsonException e)
        {
            throw new ModelConfigException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    public static LlamaConfig FromJson(string json, string origin = "config.json")
    {
        try
        {
            LlamaConfig config = JsonSerializer.Deserialize<LlamaConfig>(json)
                ?? throw new ModelConfigException($"{origin}: empty config");
            config.Validate(origin);
            return config;
        }
        catch (JsonException e)
        {
            throw new ModelConfigException($"{origin}: not valid JSON ({e.Message})", e);
        }
    }

    /// <summary>Rejects configs this engine would silently compute wrong numbers for.</summary>
    public void Validate(string origin = "config.json")
    {
        void Require(bool ok, string what)
        {
            if (!ok) throw new ModelConfigException($"{origin}: {what}");
        }

        Require(VocabSize > 0, "vocab_size must be positive");
        Require(HiddenSize > 0, "hidden_size must be positive");
        Require(IntermediateSize > 0, "intermediate_size must be positive");
        Require(NumHiddenLayers > 0, "num_hidden_layers must be positive");
        Require(NumAttentionHeads > 0, "num_attention_heads must be positive");
        Require(HiddenSize % NumAttentionHeads == 0, $"hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}");
        Require(HeadDim % 2 == 0, $"head dim {HeadDim} must be even for rotary embeddings");
        Require(KeyValueHeads > 0 && NumAttentionHeads % KeyValueHeads == 0,
            $"num_attention_heads {NumAttentionHeads} is not a multiple of num_key_value_heads {KeyValueHeads}");
        Require(RmsNormEps > 0, "rms_norm_eps must be positive");
        Require(RopeTheta > 0, "rope_theta must be positive");
        Require(MaxPositionEmbeddings > 0, "max_position_embeddings must be positive");
        Require(HiddenAct == "silu", $"hidden_act '{HiddenAct}' is not supported (only silu)");
        Require(!AttentionBias, "attention_bias=true is not supported");
        Require(!MlpBias, "mlp_bias=true is not supported");
        Require(RopeScaling is null || RopeScaling.Value.ValueKind == JsonValueKind.Null, "rope_scaling is not supported");
        Require(ModelType is null || ModelType == "llama", $"model_type '{ModelType}' is not llama");
    }
}

/// <summary>A model configuration that is missing, malformed, or asks for something this engine cannot run.</summary>
public sealed class ModelConfigException : Exception
{
    public ModelConfigException(string message) : base(message) { }
    public ModelConfigException(string message, Exception inner) : base(message, inner) { }
}
