using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace LLark.Training;

/// <summary>
/// What <c>llark train --config FILE</c> reads. Relative paths are resolved against the config file's folder.
/// Every field is documented with its default; <see cref="Validate"/> names the field of any error.
/// </summary>
public sealed record TrainingConfig
{
    [JsonPropertyName("data")] public DataConfig Data { get; init; } = new();

    [JsonPropertyName("model")] public ModelConfig Model { get; init; } = new();

    /// <summary>
    /// "full" (default, LLark's recipe), "projector" (alignment: only the projector) or "lora" (projector, audio rows
    /// and LoRA adapters; merged into the weights in the exported checkpoint).
    /// </summary>
    [JsonPropertyName("mode")] public string Mode { get; init; } = "full";

    /// <summary>
    /// Mode "full" only: also train <c>model.embed_tokens</c> (every row) and <c>lm_head</c>, which LLark's recipe keeps
    /// frozen. For a Llama trained from scratch (<c>model.llama_config</c>, the demo model), whose random rows would
    /// otherwise stay random. Default false.
    /// </summary>
    [JsonPropertyName("train_embeddings")] public bool TrainEmbeddings { get; init; }

    /// <summary>
    /// How a fresh projector starts: "default" (nn.Linear's uniform init, as LLark) or "standardize": the same draw
    /// applied to the frames standardised by the training set's per-dimension mean and standard deviation (W/σ, and the
    /// bias less W·μ/σ), folded into the one Linear. For encoders whose frames share a large constant offset, which
    /// would otherwise make every clip's audio tokens look alike to a Llama trained from scratch. Default "default".
    /// </summary>
    [JsonPropertyName("projector_init")] public string ProjectorInit { get; init; } = "default";

    /// <summary>
    /// The projector's shape: "linear" (LLark's one Linear) or "mlp2x_gelu" (LLaVA-1.5's two Linears with a GELU
    /// between; any "mlp{N}x_gelu"). The exported config.json records it as <c>mm_projector_type</c>, which every loader
    /// honours. Default: a base LLark's, else "linear".
    /// </summary>
    [JsonPropertyName("projector")] public string? Projector { get; init; }

    /// <summary>
    /// Gaussian noise added to every training frame (never validation's), its standard deviation this many times that
    /// dimension's standard deviation over the training frames: 0.5 adds noise at half each dimension's spread. A
    /// regulariser against learning clips by their exact frames; drawn per micro-batch from (seed, micro-batch), so a
    /// resumed run stays bit-exact. Default 0 (none).
    /// </summary>
    [JsonPropertyName("frame_noise")] public double FrameNoise { get; init; }

    [JsonPropertyName("optimizer")] public OptimizerConfig Optimizer { get; init; } = new();

    /// <summary>The adapters of mode "lora" (required there, ignored otherwise).</summary>
    [JsonPropertyName("lora")] public LoraConfig? Lora { get; init; }

    /// <summary>Examples per micro-batch (default 8).</summary>
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 8;

    /// <summary>Micro-batches whose gradients add up to one optimizer step (default 1).</summary>
    [JsonPropertyName("grad_accumulation")] public int GradAccumulation { get; init; } = 1;

    /// <summary>Longest sequence in tokens, audio span included (default 2048, LLark's).</summary>
    [JsonPropertyName("max_length")] public int MaxLength { get; init; } = 2048;

    /// <summary>Optimizer steps to run; when absent, <see cref="Epochs"/> passes over the data decide.</summary>
    [JsonPropertyName("steps")] public int? Steps { get; init; }

    /// <summary>Passes over the training examples when <see cref="Steps"/> is absent (default 1).</summary>
    [JsonPropertyName("epochs")] public double Epochs { get; init; } = 1;

    /// <summary>Seeds the data order and every fresh initialisation (default 42).</summary>
    [JsonPropertyName("seed")] public int Seed { get; init; } = 42;

    /// <summary>Validation loss every N optimizer steps; 0 = only at the end (default 0).</summary>
    [JsonPropertyName("eval_every")] public int EvalEvery { get; init; }

    /// <summary>Training state every N optimizer steps; 0 = only at the end and on Ctrl-C (default 0).</summary>
    [JsonPropertyName("save_every")] public int SaveEvery { get; init; }

    /// <summary>A progress line every N optimizer steps (default 1).</summary>
    [JsonPropertyName("log_every")] public int LogEvery { get; init; } = 1;

    /// <summary>
    /// "fp32" (default) or "bf16": bf16 holds the frozen base weights of modes projector and lora (what is trained stays
    /// float32); full mode in bf16 is refused until fp32 master weights are kept beside bf16 compute.
    /// </summary>
    [JsonPropertyName("dtype")] public string DType { get; init; } = "fp32";

    /// <summary>"cpu" (default) or "cuda" / "cuda:N".</summary>
    [JsonPropertyName("device")] public string Device { get; init; } = "cpu";

    /// <summary>Recompute activations in backward to save memory (a 7B on a GPU). Not built yet: true is refused.</summary>
    [JsonPropertyName("activation_checkpointing")] public bool ActivationCheckpointing { get; init; }

    /// <summary>What the embeddings must be; the embedding set is refused when it disagrees.</summary>
    [JsonPropertyName("audio")] public AudioExpectation Audio { get; init; } = new();

    /// <summary>The folder of the config file; relative paths resolve against it.</summary>
    [JsonIgnore] public string BaseDirectory { get; init; } = Environment.CurrentDirectory;

    public string Resolve(string path) => Path.GetFullPath(Path.Combine(BaseDirectory, path));

    public static TrainingConfig Load(string path)
    {
        if (!File.Exists(path)) throw new TrainingConfigException("config", $"config file not found: {path}");
        TrainingConfig config;
        try
        {
            config = JsonSerializer.Deserialize<TrainingConfig>(File.ReadAllText(path), ReadOptions)
                ?? throw new TrainingConfigException("config", $"{path} is empty");
        }
        catch (JsonException e)
        {
            throw new TrainingConfigException(e.Path is { Length: > 2 } p ? p.TrimStart('$', '.') : "config", $"{path}: {e.Message}");
        }
        config = config with { BaseDirectory = Path.GetDirectoryName(Path.GetFullPath(path))! };
        config.Validate();
        return config;
    }

    public static TrainingConfig Parse(string json, string baseDirectory)
    {
        TrainingConfig config = JsonSerializer.Deserialize<TrainingConfig>(json, ReadOptions)
            ?? throw new TrainingConfigException("config", "empty config");
        config = config with { BaseDirectory = baseDirectory };
        config.Validate();
        return config;
    }

    /// <summary>Unknown fields are errors: a misspelt "warmup_ratio" must not silently train with the default.</summary>
    internal static readonly JsonSerializerOptions ReadOptions = new()
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    public void Validate()
    {
        static void Require(bool ok, string field, string message)
        {
            if (!ok) throw new TrainingConfigException(field, message);
        }

        Require(!string.IsNullOrWhiteSpace(Data.Pairs), "data.pairs", "the instruction pairs file (pairs.jsonl) is required");
        Require(!string.IsNullOrWhiteSpace(Data.Embeddings), "data.embeddings", "the embedding set folder is required");
        Require(Data.ValidationFraction is >= 0 and < 1, "data.validation_fraction", $"must be in [0, 1), got {Data.ValidationFraction}");
        Require(Data.ValidationPairs is null || Data.ValidationFraction == 0, "data.validation_fraction",
            "give either data.validation_pairs or data.validation_fraction, not both");
        Require(Data.MaxValidationExamples >= 1, "data.max_validation_examples", "must be at least 1");
        if (Data.TaskRepeats is { } repeats)
        {
            foreach ((string task, int count) in repeats)
            {
                Require(!string.IsNullOrWhiteSpace(task), "data.task_repeats", "a task name is empty");
                Require(count is >= 0 and <= 1000, "data.task_repeats", $"'{task}': the count must be in [0, 1000], got {count}");
            }
        }
        Require((Model.Base is null) != (Model.LlamaConfig is null), "model.base",
            "give exactly one of model.base (a Hugging Face Llama or LLark folder) and model.llama_config (a fresh model)");
        Require(Model.Base is not null || Model.Tokenizer is not null, "model.tokenizer", "a fresh model (model.llama_config) needs model.tokenizer");
        Require(Mode is "full" or "projector" or "lora", "mode", $"'{Mode}' is not one of full, projector, lora");
        Require(!TrainEmbeddings || Mode == "full", "train_embeddings", $"is for mode full; mode {Mode} keeps the embeddings and lm_head frozen");
        Require(ProjectorInit is "default" or "standardize", "projector_init", $"'{ProjectorInit}' is not default or standardize");
        Require(Projector is null || System.Text.RegularExpressions.Regex.IsMatch(Projector, "^(linear|mlp[1-8]x_gelu)$"), "projector",
            $"'{Projector}' is not linear or mlp<N>x_gelu with N from 1 to 8 (mlp2x_gelu is LLaVA-1.5's)");
        Require(Mode != "lora" || Lora is not null, "lora", "mode lora needs a lora section ({\"r\": 8, \"alpha\": 16, \"dropout\": 0.05})");
        if (Lora is { } l)
        {
            Require(l.R >= 1, "lora.r", $"must be at least 1, got {l.R}");
            Require(l.Alpha > 0, "lora.alpha", $"must be positive, got {l.Alpha}");
            Require(l.Dropout is >= 0 and < 1, "lora.dropout", $"must be in [0, 1), got {l.Dropout}");
            Require(l.Targets.Length > 0 && l.Targets.All(LoraAdapters.AllTargets.Contains) && l.Targets.Distinct().Count() == l.Targets.Length, "lora.targets",
                $"must be distinct names among {string.Join(", ", LoraAdapters.AllTargets)}");
        }
        OptimizerConfig o = Optimizer;
        Require(o.Lr > 0 && double.IsFinite(o.Lr), "optimizer.lr", $"must be positive, got {o.Lr}");
        Require(o.Betas is { Length: 2 } && o.Betas.All(b => b is >= 0 and < 1), "optimizer.betas", "must be two numbers in [0, 1)");
        Require(o.Eps > 0, "optimizer.eps", $"must be positive, got {o.Eps}");
        Require(o.WeightDecay >= 0, "optimizer.weight_decay", $"must not be negative, got {o.WeightDecay}");
        Require(o.WarmupRatio is >= 0 and <= 1, "optimizer.warmup_ratio", $"must be in [0, 1], got {o.WarmupRatio}");
        Require(o.MaxGradNorm is null || o.MaxGradNorm > 0, "optimizer.max_grad_norm", "must be positive (or null for no clipping)");
        Require(BatchSize >= 1, "batch_size", "must be at least 1");
        Require(GradAccumulation >= 1, "grad_accumulation", "must be at least 1");
        Require(MaxLength >= 8, "max_length", "must be at least 8");
        Require(Steps is null || Steps >= 1, "steps", "must be at least 1");
        Require(Steps is not null || Epochs > 0, "epochs", "must be positive");
        Require(EvalEvery >= 0, "eval_every", "must not be negative");
        Require(SaveEvery >= 0, "save_every", "must not be negative");
        Require(LogEvery >= 1, "log_every", "must be at least 1");
        Require(DType is "fp32" or "float32" or "bf16" or "bfloat16", "dtype", $"'{DType}' is not fp32 or bf16");
        Require(DType is "fp32" or "float32" || Mode != "full", "dtype",
            "bf16 is for the frozen base of modes projector and lora; full mode trains the base itself, which needs fp32 master weights (not built)");
        Require(Device == "cpu" || Device.StartsWith("cuda", StringComparison.Ordinal), "device", $"'{Device}' is not cpu or cuda[:N]");
        Require(!ActivationCheckpointing, "activation_checkpointing",
            "not built yet (recomputing each block in backward needs a custom autograd function); train without it, or with a smaller batch");
        Require(Audio.Fps is null || Audio.Fps > 0, "audio.fps", "must be positive");
        Require(FrameNoise is >= 0 and <= 10 && double.IsFinite(FrameNoise), "frame_noise", $"must be in [0, 10], got {FrameNoise}");
    }

    /// <summary>The fields that must not change between a run and its resumption, as JSON.</summary>
    internal string ResumeFingerprint()
    {
        var fingerprint = new JsonObject
        {
            ["mode"] = Mode,
            ["lora"] = Mode == "lora" ? JsonSerializer.SerializeToNode(Lora) : null,
            ["train_embeddings"] = TrainEmbeddings,
            ["projector_init"] = ProjectorInit,
            ["model"] = JsonSerializer.SerializeToNode(Model),
            ["optimizer"] = JsonSerializer.SerializeToNode(Optimizer),
            ["batch_size"] = BatchSize,
            ["grad_accumulation"] = GradAccumulation,
            ["max_length"] = MaxLength,
            ["steps"] = Steps,
            ["epochs"] = Epochs,
            ["seed"] = Seed,
            ["data"] = JsonSerializer.SerializeToNode(Data),
        };
        // Added after states were saved without it: present only when set, so those states still resume.
        if (FrameNoise > 0) fingerprint["frame_noise"] = FrameNoise;
        if (Projector is not null) fingerprint["projector"] = Projector;
        return fingerprint.ToJsonString();
    }
}

public sealed record DataConfig
{
    /// <summary>pairs.jsonl of <see cref="LLark.Data.InstructionPair"/> (required).</summary>
    [JsonPropertyName("pairs")] public string Pairs { get; init; } = "";

    /// <summary>The embedding set folder (embeddings.jsonl + one .npy a clip) (required).</summary>
    [JsonPropertyName("embeddings")] public string Embeddings { get; init; } = "";

    /// <summary>A separate pairs file for validation (its clips must be in the same embedding set). Default none.</summary>
    [JsonPropertyName("validation_pairs")] public string? ValidationPairs { get; init; }

    /// <summary>Share of clips held out for validation, chosen by a hash of the clip id (default 0.02).</summary>
    [JsonPropertyName("validation_fraction")] public double ValidationFraction { get; init; } = 0.02;

    /// <summary>Validation examples scored at most per evaluation (default 256).</summary>
    [JsonPropertyName("max_validation_examples")] public int MaxValidationExamples { get; init; } = 256;

    /// <summary>
    /// Times each training example of a task is seen per epoch, by the pairs' <c>task</c> field, for example
    /// <c>{"tempo": 4, "tempo_feel": 4}</c> to weight tempo questions up in the mix, or 0 to leave a task out. Tasks not
    /// named are seen once; validation is not repeated. Default none.
    /// </summary>
    [JsonPropertyName("task_repeats")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Dictionary<string, int>? TaskRepeats { get; init; }
}

public sealed record ModelConfig
{
    /// <summary>A Hugging Face Llama folder (Llama-2-7b-chat) or a LLark checkpoint to continue from.</summary>
    [JsonPropertyName("base")] public string? Base { get; init; }

    /// <summary>Instead of <see cref="Base"/>: a Llama config.json object for a fresh, randomly initialised model.</summary>
    [JsonPropertyName("llama_config")] public JsonObject? LlamaConfig { get; init; }

    /// <summary>tokenizer.model (default: the one in <see cref="Base"/>); LLark's four tokens are added after its pieces.</summary>
    [JsonPropertyName("tokenizer")] public string? Tokenizer { get; init; }
}

public sealed record LoraConfig
{
    /// <summary>Rank of each adapter (default 8).</summary>
    [JsonPropertyName("r")] public int R { get; init; } = 8;

    /// <summary>The adapters' output is scaled by alpha / r (default 16).</summary>
    [JsonPropertyName("alpha")] public double Alpha { get; init; } = 16;

    /// <summary>Dropout on each adapter's input while training (default 0.05).</summary>
    [JsonPropertyName("dropout")] public double Dropout { get; init; } = 0.05;

    /// <summary>Projections that get adapters (default all seven: q, k, v, o, gate, up, down).</summary>
    [JsonPropertyName("targets")] public string[] Targets { get; init; } = [.. LoraAdapters.AllTargets];
}

public sealed record OptimizerConfig
{
    /// <summary>Peak learning rate (default 5e-5, LLark's).</summary>
    [JsonPropertyName("lr")] public double Lr { get; init; } = 5e-5;

    /// <summary>AdamW betas (default [0.9, 0.999]).</summary>
    [JsonPropertyName("betas")] public double[] Betas { get; init; } = [0.9, 0.999];

    /// <summary>AdamW epsilon (default 1e-8).</summary>
    [JsonPropertyName("eps")] public double Eps { get; init; } = 1e-8;

    /// <summary>Decoupled weight decay (default 0, LLark's).</summary>
    [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; }

    /// <summary>Share of the steps spent warming up linearly from 0 (default 0.03); then cosine decay to 0.</summary>
    [JsonPropertyName("warmup_ratio")] public double WarmupRatio { get; init; } = 0.03;

    /// <summary>Clip the global gradient norm to this (default 1.0, Hugging Face Trainer's); null = no clipping.</summary>
    [JsonPropertyName("max_grad_norm")] public double? MaxGradNorm { get; init; } = 1.0;
}

public sealed record AudioExpectation
{
    /// <summary>Frame rate the embeddings must have (default: whatever the set has, if it is one rate).</summary>
    [JsonPropertyName("fps")] public double? Fps { get; init; }

    /// <summary>Encoder name the embeddings must come from (default: any single one).</summary>
    [JsonPropertyName("encoder")] public string? Encoder { get; init; }

    /// <summary>Encoder layer the embeddings must come from (default: any single one).</summary>
    [JsonPropertyName("layer")] public int? Layer { get; init; }
}

/// <summary>A config, or data and checkpoints that disagree with it; <see cref="Field"/> names what to fix.</summary>
public sealed class TrainingConfigException(string field, string message) : Exception($"{field}: {message}")
{
    public string Field { get; } = field;
}
