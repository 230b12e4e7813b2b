using System.Text.Json.Nodes;
using LLark.Checkpoints;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Multimodal;
using LLark.Language.Engine.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Training;

/// <summary>A tensor the optimizer updates, under the name the training state stores it by.</summary>
public sealed record TrainedTensor(string Name, Tensor Tensor);

/// <summary>What the exported checkpoint states about the audio it was trained on.</summary>
public sealed record AudioFormat(int Width, double Fps, string? Encoder, int? Layer);

/// <summary>
/// LLark set up for training through the engine's own modules: the Llama (from a checkpoint, resized for LLark's four
/// added tokens when it lacks them, or fresh), the projector (from the checkpoint when it has one, else fresh), and
/// the <c>&lt;audio_start&gt;</c>/<c>&lt;audio_end&gt;</c> embedding rows as a tensor of their own, so that training
/// them needs no gradient (nor optimizer moments) for the other 32k rows.
/// </summary>
public sealed class TrainableLLark : IDisposable
{
    private readonly AudioProjector projector;
    private readonly Tensor audioRows;
    private readonly JsonObject configJson;
    private readonly LoraAdapters? lora;

    private TrainableLLark(LlamaForCausalLM llama, AudioProjector projector, LlamaTextTokenizer tokenizer, string tokenizerPath,
        JsonObject configJson, string mode, LoraAdapters? lora, bool trainEmbeddings)
    {
        this.lora = lora;
        Llama = llama;
        this.projector = projector;
        Tokenizer = tokenizer;
        TokenizerPath = tokenizerPath;
        this.configJson = configJson;
        Mode = mode;
        PadId = AddedId("[PAD]");
        PatchId = AddedId("<audio_patch>");
        StartId = AddedId("<audio_start>");
        EndId = AddedId("<audio_end>");
        if (EndId != StartId + 1) throw new ModelConfigException("<audio_start> and <audio_end> must be consecutive added tokens");
        using (no_grad()) audioRows = llama.EmbeddingWeight.narrow(0, StartId, 2).to(ScalarType.Float32).clone();

        var trained = new List<TrainedTensor>();
        foreach (var (weightName, weight, biasName, bias) in projector.Layers())
        {
            trained.Add(new TrainedTensor(weightName, weight));
            trained.Add(new TrainedTensor(biasName, bias));
        }
        if (mode == "full")
        {
            trained.AddRange(llama.ForwardTensors()
                .Where(t => trainEmbeddings || t.Name is not ("model.embed_tokens.weight" or "lm_head.weight"))
                .Select(t => new TrainedTensor(t.Name, t.Tensor)));
            trained.Add(new TrainedTensor(AudioRowsName, audioRows));
        }
        else if (mode == "lora")
        {
            trained.AddRange(lora!.Tensors());
            trained.Add(new TrainedTensor(AudioRowsName, audioRows));
        }
        foreach (TrainedTensor t in trained) t.Tensor.requires_grad_(true);
        Trained = trained;
    }

    /// <summary>The state name of the [2, hidden] rows of &lt;audio_start&gt; and &lt;audio_end&gt;.</summary>
    public const string AudioRowsName = "model.embed_tokens.weight[audio_start:audio_end]";

    public LlamaForCausalLM Llama { get; }
    public LlamaTextTokenizer Tokenizer { get; }
    public string TokenizerPath { get; }
    public string Mode { get; }
    public int PadId { get; }
    public int PatchId { get; }
    public int StartId { get; }
    public int EndId { get; }
    public int AudioWidth => projector.AudioWidth;

    /// <summary>In optimizer order: projector, then (full mode) each layer's tensors, the final norm, the audio rows.</summary>
    public IReadOnlyList<TrainedTensor> Trained { get; }

    public Device Device => Llama.Device;

    /// <summary>
    /// Builds the model a config asks for, with a projector for <paramref name="audio"/>'s frames. A base LLark
    /// checkpoint whose mm_* keys disagree with the embeddings (width, fps, encoder, layer) is refused.
    /// </summary>
    /// <param name="config">The training config (model, mode, projector init).</param>
    /// <param name="audio">The embeddings' format, which the projector takes.</param>
    /// <param name="frameStatistics">Per-dimension mean and standard deviation of the training frames, for
    /// <c>projector_init</c> "standardize" (asked for only then, and only when the projector is fresh).</param>
    public static TrainableLLark Create(TrainingConfig config, AudioFormat audio, Func<(float[] Mean, float[] Std)>? frameStatistics = null)
    {
        int audioWidth = audio.Width;
        Device device = config.Device == "cpu" ? CPU : new Device(config.Device);
        var generator = new Generator((ulong)config.Seed);
        string? baseDir = config.Model.Base is { } b ? config.Resolve(b) : null;
        JsonObject json;
        if (baseDir is not null)
        {
            string path = Path.Combine(baseDir, "config.json");
            if (!File.Exists(path)) throw new TrainingConfigException("model.base", $"no config.json in {baseDir}");
            json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        }
        else
        {
            json = (JsonObject)config.Model.LlamaConfig!.DeepClone();
        }
        LlamaConfig llamaConfig = LlamaConfig.FromJson(json.ToJsonString(), baseDir is null ? "model.llama_config" : Path.Combine(baseDir, "config.json"));
        string tokenizerPath = config.Model.Tokenizer is { } t ? config.Resolve(t) : Path.Combine(baseDir!, "tokenizer.model");
        if (!File.Exists(tokenizerPath)) throw new TrainingConfigException("model.tokenizer", $"tokenizer not found: {tokenizerPath}");
        LlamaTextTokenizer tokenizer = LlamaTextTokenizer.Load(tokenizerPath, LlamaTextTokenizer.LLarkAddedTokens);

        int vocab = llamaConfig.VocabSize;
        bool resize = baseDir is not null && vocab == tokenizer.BaseVocabSize;
        if (resize) vocab = tokenizer.VocabSize;
        if (vocab < tokenizer.VocabSize)
        {
            throw new TrainingConfigException(baseDir is null ? "model.llama_config" : "model.base",
                $"vocab_size {llamaConfig.VocabSize} has no rows for LLark's added tokens ({tokenizer.BaseVocabSize} pieces + 4)");
        }
        if (json["mm_hidden_size"] is JsonNode width && width.GetValue<int>() != audioWidth)
        {
            throw new TrainingConfigException("model.base",
                $"the checkpoint's projector takes {width.GetValue<int>()}-wide frames (mm_hidden_size) but the embeddings are {audioWidth} wide");
        }
        if (json["mm_audio_fps"] is JsonNode fps && Math.Abs(fps.GetValue<double>() - audio.Fps) > 1e-9)
            throw new TrainingConfigException("model.base", $"the checkpoint was trained at {fps.GetValue<double>()} fps (mm_audio_fps) but the embeddings are at {audio.Fps}");
        if (json["mm_audio_encoder"] is JsonNode encoder && audio.Encoder is not null && encoder.GetValue<string>() != audio.Encoder)
            throw new TrainingConfigException("model.base", $"the checkpoint was trained on '{encoder.GetValue<string>()}' embeddings (mm_audio_encoder) but these come from '{audio.Encoder}'");
        if (json["mm_audio_layer"] is JsonNode layer && audio.Layer is not null && layer.GetValue<int>() != audio.Layer)
            throw new TrainingConfigException("model.base", $"the checkpoint was trained on layer {layer.GetValue<int>()} (mm_audio_layer) but these come from layer {audio.Layer}");
        json["vocab_size"] = vocab;
        llamaConfig = llamaConfig with { VocabSize = vocab };
        ProjectorType projectorType = ChooseProjector(config, baseDir is not null ? json : null);

        // bf16 holds only the frozen base (modes projector and lora): what is trained stays float32, so small updates are not lost.
        ScalarType baseType = config.DType is "bf16" or "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float32;
        var llama = new LlamaForCausalLM(llamaConfig, baseType, device);
        var proj = new AudioProjector(audioWidth, llamaConfig.HiddenSize, ScalarType.Float32, device, projectorType);
        try
        {
            using (no_grad())
            {
                bool projectorLoaded = false;
                if (baseDir is not null) projectorLoaded = LoadBase(baseDir, llama, proj, resize);
                else InitFresh(llama, json["initializer_range"]?.GetValue<double>() ?? 0.02, generator);
                if (!projectorLoaded)
                {
                    InitProjector(proj, generator);
                    if (config.ProjectorInit == "standardize")
                    {
                        (float[] mean, float[] std) = (frameStatistics ?? throw new InvalidOperationException("projector_init standardize needs the frame statistics"))();
                        StandardizeProjector(proj, mean, std);
                    }
                }
            }
            LoraAdapters? adapters = config.Mode == "lora" ? new LoraAdapters(llama, config.Lora!, config.Seed, generator) : null;
            return new TrainableLLark(llama, proj, tokenizer, tokenizerPath, json, config.Mode, adapters, config.TrainEmbeddings);
        }
        catch
        {
            llama.Dispose();
            proj.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The config's <c>projector</c>, or a base checkpoint's <c>mm_projector_type</c>, else LLark's Linear. A base LLark
    /// whose projector has another shape than the config asks for is refused: its weights would not fit.
    /// </summary>
    private static ProjectorType ChooseProjector(TrainingConfig config, JsonObject? baseJson)
    {
        // A base with mm_hidden_size is a LLark, whose projector is linear unless its config says otherwise.
        ProjectorType? based = baseJson?["mm_hidden_size"] is null ? null
            : ProjectorType.Parse(baseJson["mm_projector_type"]?.GetValue<string>(), "model.base");
        ProjectorType? asked;
        try
        {
            asked = config.Projector is { } name ? ProjectorType.Parse(name, "projector") : null;
        }
        catch (ModelConfigException e)
        {
            throw new TrainingConfigException("projector", e.Message);
        }
        if (asked is not null && based is not null && asked.Name != based.Name)
            throw new TrainingConfigException("projector", $"'{asked.Name}', but the base LLark's projector is '{based.Name}' (mm_projector_type)");
        return asked ?? based ?? ProjectorType.Linear;
    }

    /// <summary>Copies the checkpoint in; true when it held a projector too (a LLark checkpoint to continue from).</summary>
    private static bool LoadBase(string dir, LlamaForCausalLM llama, AudioProjector proj, bool resize)
    {
        using ITensorSource source = CheckpointOpener.Open(dir);
        var targets = llama.CheckpointParameters().ToDictionary();
        bool hasProjector = source.Entries.Keys.Any(k => k.StartsWith("model.mm_projector.", StringComparison.Ordinal));
        if (hasProjector) foreach ((string k, Tensor v) in proj.CheckpointParameters()) targets[k] = v;
        string[] unexpected = [.. source.Entries.Keys.Where(k => !targets.ContainsKey(k) && !LlamaLoader.IsDerivedBuffer(k))];
        if (unexpected.Length > 0)
            throw new CheckpointException($"{dir}: tensors this model has no place for: {string.Join(", ", unexpected.Take(8))}");
        foreach ((string name, Tensor target) in targets)
        {
            if (!source.Entries.TryGetValue(name, out TensorEntry? entry)) throw new CheckpointException($"{dir}: missing tensor {name}");
            bool grows = resize && name is "model.embed_tokens.weight" or "lm_head.weight";
            long[] expected = grows ? [target.shape[0] - 4, target.shape[1]] : target.shape;
            if (!entry.Shape.SequenceEqual(expected))
                throw new CheckpointException($"{dir}: {name} is [{string.Join(", ", entry.Shape)}], expected [{string.Join(", ", expected)}]");
            using Tensor staged = empty(entry.Shape, dtype: ScalarType.Float32);
            source.ReadInto(name, staged);
            if (!grows)
            {
                target.copy_(staged);
                continue;
            }
            // New rows start at the mean of the old ones, as transformers' resize for added tokens (and LLaVA) does.
            target.narrow(0, 0, staged.shape[0]).copy_(staged);
            using Tensor mean = staged.mean([0], keepdim: true);
            target.narrow(0, staged.shape[0], 4).copy_(mean.expand(4, -1));
        }
        return hasProjector;
    }

    /// <summary>Hugging Face's Llama initialisation: normal(0, initializer_range) for every matrix, ones for the norms.</summary>
    private static void InitFresh(LlamaForCausalLM llama, double std, Generator generator)
    {
        foreach ((string name, Tensor t) in llama.ForwardTensors())
        {
            using Tensor value = name.EndsWith("norm.weight", StringComparison.Ordinal)
                ? ones(t.shape, dtype: ScalarType.Float32)
                : empty(t.shape, dtype: ScalarType.Float32).normal_(0, std, generator);
            t.copy_(value);
        }
    }

    /// <summary>W' = W·diag(1/σ), b' = b − W'·μ: the projector of standardised frames, as one Linear of the raw ones.</summary>
    internal static void StandardizeProjector(AudioProjector proj, float[] mean, float[] std)
    {
        (Tensor weight, Tensor bias) = proj.Input;
        if (mean.Length != weight.shape[1] || std.Length != weight.shape[1])
            throw new ArgumentException($"frame statistics of width {mean.Length}/{std.Length} for a projector of width {weight.shape[1]}");
        using Tensor mu = tensor(mean, dtype: ScalarType.Float32, device: weight.device);
        using Tensor inv = tensor(std.Select(s => s > 1e-6f ? 1f / s : 1f).ToArray(), dtype: ScalarType.Float32, device: weight.device);
        using Tensor perColumn = inv.unsqueeze(0);
        weight.mul_(perColumn);
        using Tensor shift = weight.matmul(mu);
        bias.sub_(shift);
    }

    /// <summary>nn.Linear's default for each layer: weight and bias uniform in ±1/sqrt(in_features).</summary>
    private static void InitProjector(AudioProjector proj, Generator generator)
    {
        foreach (var (_, weight, _, bias) in proj.Layers())
        {
            double bound = 1.0 / Math.Sqrt(weight.shape[1]);
            foreach (Tensor t in new[] { weight, bias })
            {
                using Tensor value = empty(t.shape, dtype: ScalarType.Float32).uniform_(-bound, bound, generator);
                t.copy_(value);
            }
        }
    }

    /// <summary>
    /// Mean cross-entropy over the batch's answer tokens (labels[t + 1] scored by the logits at t), with the autograd
    /// graph attached: the caller calls backward.
    /// </summary>
    public Tensor Loss(TrainingBatch batch)
    {
        using var scope = NewDisposeScope();
        if (lora is not null) lora.Training = true;
        (Tensor logits, Tensor targets) = Logits(batch);
        return nn.functional.cross_entropy(logits, targets).MoveToOuterDisposeScope();
    }

    /// <summary>Summed cross-entropy and the number of answer tokens, without gradients (validation).</summary>
    public (double Sum, int Tokens) EvalLoss(TrainingBatch batch)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        if (lora is not null) lora.Training = false;
        (Tensor logits, Tensor targets) = Logits(batch);
        Tensor sum = nn.functional.cross_entropy(logits, targets, reduction: nn.Reduction.Sum);
        return (sum.item<float>(), (int)targets.shape[0]);
    }

    private (Tensor Logits, Tensor Targets) Logits(TrainingBatch batch)
    {
        int b = batch.Size, t = batch.Length;
        long hidden = Llama.Config.HiddenSize;
        var starts = new List<long>();
        var ends = new List<long>();
        var patches = new List<long>();
        var scored = new List<long>();
        var targets = new List<long>();
        for (int i = 0; i < batch.Ids.Length; i++)
        {
            long id = batch.Ids[i];
            if (id == StartId) starts.Add(i);
            else if (id == EndId) ends.Add(i);
            else if (id == PatchId) patches.Add(i);
            if (i % t < t - 1 && batch.Labels[i + 1] != ExampleLayout.IgnoreIndex)
            {
                scored.Add(i);
                targets.Add(batch.Labels[i + 1]);
            }
        }
        if (patches.Count != batch.FrameCount)
            throw new InvalidOperationException($"{patches.Count} patch positions for {batch.FrameCount} frames");
        if (scored.Count == 0) throw new InvalidOperationException("the batch has no answer tokens to score");

        Tensor ids = tensor(batch.Ids, dtype: ScalarType.Int64, device: Device).view(b, t);
        // Spliced in float32 (the projector and audio rows are float32 whatever the base's dtype); the forward casts.
        Tensor x = Llama.Embed(ids).view(b * t, hidden).to(ScalarType.Float32);
        if (starts.Count > 0) x = x.index_copy(0, Index(starts), audioRows[0].expand(starts.Count, hidden));
        if (ends.Count > 0) x = x.index_copy(0, Index(ends), audioRows[1].expand(ends.Count, hidden));
        if (patches.Count > 0)
        {
            Tensor frames = tensor(batch.Frames, [batch.FrameCount, batch.Frames.Length / batch.FrameCount], dtype: ScalarType.Float32, device: Device);
            x = x.index_copy(0, Index(patches), projector.Forward(frames));
        }
        Tensor logits = Llama.ForwardTraining(x.view(b, t, hidden), Index(scored));
        return (logits, Index(targets));
    }

    /// <summary>Called before each optimizer step's micro-batches: fixes the step's LoRA dropout masks.</summary>
    public void BeginStep(int step) => lora?.BeginStep(step);

    /// <summary>The LoRA adapters of mode "lora", for inspection.</summary>
    internal LoraAdapters? Lora => lora;

    private Tensor Index(List<long> values) => tensor(values.ToArray(), dtype: ScalarType.Int64, device: Device);

    /// <summary>
    /// Writes a folder that <see cref="LLarkModel.Load"/> (and Hugging Face) reads as it is: config.json with the
    /// mm_* keys, model.safetensors with model.* + lm_head + model.mm_projector.* (each in the dtype it was trained in:
    /// the base's, LoRA merges rounded to it; the projector float32), tokenizer.model and
    /// added_tokens.json. Written beside <paramref name="directory"/> and renamed into place when complete.
    /// </summary>
    public void Export(string directory, AudioFormat audio)
    {
        string full = Path.GetFullPath(directory);
        string partial = full + ".partial";
        if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
        Directory.CreateDirectory(partial);
        using (no_grad()) Llama.EmbeddingWeight.narrow(0, StartId, 2).copy_(audioRows);

        var tensors = Llama.CheckpointParameters().Concat(projector.CheckpointParameters())
            .Select(p => new KeyValuePair<string, Tensor>(p.Key, MergedWeight(p.Key, p.Value))).ToList();
        SafetensorsWriter.Save(Path.Combine(partial, "model.safetensors"), tensors);
        foreach (var t in tensors) t.Value.Dispose();

        var json = (JsonObject)configJson.DeepClone();
        json["torch_dtype"] = Llama.DType == ScalarType.BFloat16 ? "bfloat16" : "float32";
        json["pad_token_id"] = PadId;
        json["mm_hidden_size"] = audio.Width;
        json["mm_audio_fps"] = audio.Fps;
        if (audio.Encoder is not null) json["mm_audio_encoder"] = audio.Encoder;
        if (audio.Layer is not null) json["mm_audio_layer"] = audio.Layer;
        // LLark's own configs have no such key, and a linear projector is what its absence means.
        if (projector.Type.IsSequential) json["mm_projector_type"] = projector.Type.Name;
        json["architectures"] ??= new JsonArray("LlamaForCausalLM");
        json["model_type"] ??= "llama";
        File.WriteAllText(Path.Combine(partial, "config.json"), json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Copy(TokenizerPath, Path.Combine(partial, "tokenizer.model"));
        var added = new JsonObject();
        for (int i = 0; i < Tokenizer.AddedTokens.Count; i++) added[Tokenizer.AddedTokens[i]] = Tokenizer.BaseVocabSize + i;
        File.WriteAllText(Path.Combine(partial, LlamaTextTokenizer.AddedTokensFileName), added.ToJsonString() + "\n");

        if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
        Directory.Move(partial, full);
    }

    /// <summary>A checkpoint tensor as it is written: with its LoRA delta added (a copy; training's weights stay as they are).</summary>
    private Tensor MergedWeight(string name, Tensor value)
    {
        // The intermediates (detached view, sum, casts) are freed here rather than left to the GC.
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor? delta = lora?.Merged(name);
        Tensor merged = delta is null ? value.detach() : value.detach().add(delta, KeptScalars.One).to(value.dtype);
        return merged.cpu().contiguous().MoveToOuterDisposeScope();
    }

    private int AddedId(string token) => Tokenizer.TryGetAddedTokenId(token, out int id) ? id
        : throw new ModelConfigException($"the tokenizer lacks LLark's added token {token}");

    public void Dispose()
    {
        audioRows.Dispose();
        lora?.Dispose();
        projector.Dispose();
        Llama.Dispose();
    }
}
