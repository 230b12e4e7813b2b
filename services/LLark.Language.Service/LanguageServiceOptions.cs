using System.ComponentModel.DataAnnotations;

namespace LLark.Language.Service;

/// <summary>Section <c>LLark:Language</c> (environment: <c>LLARK__LANGUAGE__MODELPATH</c>, ...). Validated at start.</summary>
public sealed class LanguageServiceOptions : IValidatableObject
{
    public const string Section = "LLark:Language";

    /// <summary>LLark checkpoint folder (config.json with mm_hidden_size and mm_audio_fps, weights, tokenizer.model). Required.</summary>
    [Required] public string ModelPath { get; set; } = "";

    /// <summary>Name reported by GetModelInfo; default: the folder's name.</summary>
    public string? ModelId { get; set; }

    /// <summary>Run-time dtype: fp32 (default, CPU), bf16 or fp16.</summary>
    [Required] public string DType { get; set; } = "fp32";

    /// <summary>
    /// How the managed CPU kernels hold the projections and the head: fp32 (default), bf16 (half the bytes a decode step
    /// reads) or int8 (blocks of 32 weights with a float32 scale, about a quarter). Converted at load from any stored
    /// format; activations and the KV cache stay fp32. Needs DType fp32 on the CPU.
    /// </summary>
    [Required] public string Weights { get; set; } = "fp32";

    /// <summary>Where the model runs: cpu (default) or cuda[:N] (needs a CUDA build of TorchSharp).</summary>
    [Required] public string Device { get; set; } = "cpu";

    /// <summary>Sequences decoded together at most; default 8.</summary>
    [Range(1, 256)] public int MaxBatchSize { get; set; } = 8;

    /// <summary>Requests waiting for a batch slot at most, past which calls get RESOURCE_EXHAUSTED; default 64.</summary>
    [Range(1, 100_000)] public int MaxQueuedRequests { get; set; } = 64;

    /// <summary>Positions per sequence (prompt + audio + answer); 0 (default): the checkpoint's max_position_embeddings.</summary>
    [Range(0, 1 << 20)] public int ContextLength { get; set; }

    /// <summary>max_new_tokens when a request leaves it 0; default 512 (LLark's).</summary>
    [Range(1, 1 << 20)] public int DefaultMaxNewTokens { get; set; } = 512;

    /// <summary>Largest max_new_tokens a request may ask for; default 2048.</summary>
    [Range(1, 1 << 20)] public int MaxNewTokensLimit { get; set; } = 2048;

    /// <summary>Encoder service address (http://host:port, HTTP/2) for embedding ids and raw audio; unset: only inline frames.</summary>
    public string? EncoderAddress { get; set; }

    /// <summary>
    /// libtorch threads for prompt building, and for prefill where libtorch runs it (a float32 CPU model prefills with the
    /// managed kernels on every core); default 1, so that these small ops do not oversubscribe the cores the decode loop
    /// runs on. 0: libtorch's default (all cores), for long CPU prefills on a machine with many cores.
    /// </summary>
    [Range(0, 1024)] public int TorchThreads { get; set; } = 1;

    /// <summary>
    /// Bytes of prompt state (every layer's keys and values of prompt prefixes) kept so that a question about a clip
    /// already asked about prefills only what follows the shared prefix; least recently used state goes first. 0
    /// (default) turns the cache off. A position costs 2 x layers x kv_heads x head_dim x the dtype's size (1 MiB for
    /// Llama-2-7B in fp32), so a 25 s clip's prompt takes some 0.7 GiB in fp32.
    /// </summary>
    [Range(0, long.MaxValue)] public long PrefixCacheBytes { get; set; }

    /// <summary>Positions per block of the prefix cache, the unit it reuses and evicts in; default 16.</summary>
    [Range(1, 4096)] public int PrefixCacheBlockTokens { get; set; } = Engine.Serving.PrefixCache.DefaultBlockTokens;

    /// <summary>Largest request message (raw audio travels in one); default 64 MiB.</summary>
    [Range(1024, int.MaxValue)] public int MaxRequestBytes { get; set; } = 64 << 20;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (DefaultMaxNewTokens > MaxNewTokensLimit)
            yield return new ValidationResult($"DefaultMaxNewTokens {DefaultMaxNewTokens} exceeds MaxNewTokensLimit {MaxNewTokensLimit}", [nameof(DefaultMaxNewTokens)]);
        if (EncoderAddress is { Length: > 0 } address && !(Uri.TryCreate(address, UriKind.Absolute, out Uri? uri) && uri.Scheme is "http" or "https"))
            yield return new ValidationResult($"EncoderAddress '{address}' is not an http(s) URL", [nameof(EncoderAddress)]);
        if (LLark.Checkpoints.RunTimeDTypes.TryParse(DType, LLark.Checkpoints.RunTimeDTypes.Language) is null)
            yield return new ValidationResult($"DType '{DType}' is not {LLark.Checkpoints.RunTimeDTypes.Expected(LLark.Checkpoints.RunTimeDTypes.Language)}", [nameof(DType)]);
        Engine.Model.WeightFormat? weights = Engine.Model.WeightFormats.TryParse(Weights);
        if (weights is null) yield return new ValidationResult($"Weights '{Weights}' is not fp32, bf16 or int8", [nameof(Weights)]);
        if (weights is { } w && w != Engine.Model.WeightFormat.Fp32 &&
            (LLark.Checkpoints.RunTimeDTypes.TryParse(DType, LLark.Checkpoints.RunTimeDTypes.Language) is { } d && d != TorchSharp.torch.ScalarType.Float32 ||
             !Device.Trim().Equals("cpu", StringComparison.OrdinalIgnoreCase)))
            yield return new ValidationResult($"Weights {Weights} runs on the managed CPU kernels, which need DType fp32 and Device cpu (got {DType} on {Device})", [nameof(Weights)]);
    }
}
