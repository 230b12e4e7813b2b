using System.ComponentModel.DataAnnotations;

namespace LLark.Encoder.Service;

/// <summary>Section <c>LLark:Encoder</c> (environment: <c>LLARK__ENCODER__MODELPATH</c>, ...). Validated at start.</summary>
public sealed class EncoderServiceOptions : IValidatableObject
{
    public const string Section = "LLark:Encoder";

    /// <summary>A folder made by <c>llark convert-jukebox</c>, or one holding vqvae.pth.tar and prior_level_2.pth.tar. Required.</summary>
    [Required] public string ModelPath { get; set; } = "";

    /// <summary>
    /// First part of the encoder model id; default: "jukebox-5b" when the weights have the 5b top level's shapes, else
    /// "jukebox-" and 8 hex digits of the config's hash. Name fine-tuned weights here: the weights are not hashed.
    /// </summary>
    public string? ModelName { get; set; }

    /// <summary>Prior blocks to run; default: the config's (36 for 5b, LLark's choice).</summary>
    [Range(1, 1024)] public int? Layers { get; set; }

    /// <summary>Nominal frames per second after pooling (window floor(344.53125 / fps) tokens); default 25.</summary>
    [Range(0.001, 344.53125)] public double Fps { get; set; } = 25;

    /// <summary>Type the transformer matrices run in: fp32 (default) or bf16.</summary>
    [Required] public string DType { get; set; } = "fp32";

    /// <summary>Where the model runs: cpu (default) or cuda[:N] (needs a CUDA build of TorchSharp).</summary>
    [Required] public string Device { get; set; } = "cpu";

    /// <summary>llark (default: pad to the full context, then trim) or jukemirlib (encode only the clip).</summary>
    [Required] public string ExtractionPath { get; set; } = "llark";

    /// <summary>Largest clip accepted, in bytes, by Embed and by EmbedStream; default 64 MiB.</summary>
    [Range(1024, int.MaxValue - (1 << 20))] public int MaxAudioBytes { get; set; } = 64 << 20;

    /// <summary>Longest clip decoded, in seconds (only the first 23.78 s are encoded); default 1200 (20 minutes).</summary>
    [Range(1, 24 * 3600)] public double MaxAudioSeconds { get; set; } = 1200;

    /// <summary>Clips waiting for the model at most, past which calls get RESOURCE_EXHAUSTED; default 64.</summary>
    [Range(1, 100_000)] public int MaxQueuedRequests { get; set; } = 64;

    /// <summary>
    /// Clips encoded in one forward pass at most; default 4. On the padded path each clip of a batch adds its
    /// activations (about 1.5 GB at fp32 for 5b), so size this to the device's memory.
    /// </summary>
    [Range(1, 256)] public int MaxBatchSize { get; set; } = 4;

    public EncoderCacheOptions Cache { get; set; } = new();

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (ModelPath.Length > 0 && !Directory.Exists(ModelPath))
            yield return new ValidationResult($"ModelPath '{ModelPath}' is not a folder", [nameof(ModelPath)]);
        if (LLark.Checkpoints.RunTimeDTypes.TryParse(DType, LLark.Checkpoints.RunTimeDTypes.Encoder) is null)
            yield return new ValidationResult($"DType '{DType}' is not {LLark.Checkpoints.RunTimeDTypes.Expected(LLark.Checkpoints.RunTimeDTypes.Encoder)}", [nameof(DType)]);
        if (ExtractionPath.ToLowerInvariant() is not ("llark" or "jukemirlib"))
            yield return new ValidationResult($"ExtractionPath '{ExtractionPath}' is not llark or jukemirlib", [nameof(ExtractionPath)]);
        if (ModelName is { } name && (name.Length == 0 || name.Contains('/', StringComparison.Ordinal) || name.Any(char.IsWhiteSpace)))
            yield return new ValidationResult($"ModelName '{name}' must be non-empty, without '/' or spaces", [nameof(ModelName)]);
        if (Cache.MemoryBytes < 0)
            yield return new ValidationResult("Cache:MemoryBytes must be 0 (off) or more", ["Cache.MemoryBytes"]);
        if (Cache.DiskBytes < 0)
            yield return new ValidationResult("Cache:DiskBytes must be 0 (no bound) or more", ["Cache.DiskBytes"]);
        if (Cache.RedisTtl < TimeSpan.Zero)
            yield return new ValidationResult("Cache:RedisTtl must be 0 (forever) or more", ["Cache.RedisTtl"]);
    }
}

/// <summary>Section <c>LLark:Encoder:Cache</c>: the tiers an embedding is kept in, looked up in this order.</summary>
public sealed class EncoderCacheOptions
{
    /// <summary>In-process LRU, in bytes of frames; default 1 GiB (about 85 full 5b clips at 25 fps); 0 turns it off.</summary>
    public long MemoryBytes { get; set; } = 1L << 30;

    /// <summary>Folder of the durable local-disk store (created if missing); default ".llark/encoder-cache"; empty turns it off.</summary>
    public string? Directory { get; set; } = ".llark/encoder-cache";

    /// <summary>
    /// Bytes the disk tier keeps at most; past it the least recently used entries are deleted. Default 16 GiB (about
    /// 1,300 full 5b clips at 25 fps in float32); 0: no bound.
    /// </summary>
    public long DiskBytes { get; set; } = 16L << 30;

    /// <summary>StackExchange.Redis connection string (e.g. "redis:6379") of the fleet-wide tier; unset: no Redis.</summary>
    public string? Redis { get; set; }

    /// <summary>How long a Redis entry lives after its last write or hit (each hit renews it); default 7 days; 0: forever.</summary>
    public TimeSpan? RedisTtl { get; set; } = TimeSpan.FromDays(7);
}
