using LLark.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Language.Engine.Model;

/// <summary>How to materialise a checkpoint.</summary>
public sealed record LlamaLoadOptions
{
    /// <summary>Run-time dtype of weights and activations; float32 (default) on the CPU.</summary>
    public ScalarType DType { get; init; } = ScalarType.Float32;

    /// <summary>Where the weights live; the CPU by default.</summary>
    public Device? Device { get; init; }

    /// <summary>
    /// How the managed CPU kernels hold the projections and the head: float32 (default), or packed as bf16 or int8 at
    /// load (<see cref="LlamaForCausalLM.PackWeights"/>) from whatever format the checkpoint stores.
    /// </summary>
    public WeightFormat Weights { get; init; } = WeightFormat.Fp32;

    public IProgress<LoadProgress>? Progress { get; init; }
}

/// <summary>Loads a Hugging Face Llama folder: <c>config.json</c> plus safetensors or pickled weights.</summary>
public static class LlamaLoader
{
    /// <summary>
    /// Buffers that older Hugging Face exports saved beside the weights; they are recomputed from the
    /// config, never loaded.
    /// </summary>
    public static bool IsDerivedBuffer(string name) => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    public static LlamaForCausalLM Load(string directory, LlamaLoadOptions? options = null, CancellationToken cancellationToken = default) =>
        Load(directory, options, extra: null, cancellationToken);

    /// <summary>
    /// Loads the Llama weights and, from the same checkpoint, <paramref name="extra"/>: tensors of modules around the
    /// language model (LLark's projector) that the strict check counts as the model's own.
    /// </summary>
    internal static LlamaForCausalLM Load(string directory, LlamaLoadOptions? options, IReadOnlyDictionary<string, Tensor>? extra,
        CancellationToken cancellationToken)
    {
        options ??= new LlamaLoadOptions();
        if (!Directory.Exists(directory))
            throw new CheckpointException($"model folder not found: {directory}");
        LlamaConfig config = LlamaConfig.FromFile(Path.Combine(directory, "config.json"));
        using ITensorSource source = CheckpointOpener.Open(directory);

        // Compare shapes on the meta device first: a config that disagrees with the weights fails in
        // milliseconds instead of after allocating the whole model.
        using (var meta = new LlamaForCausalLM(config, options.DType, META))
            CheckShapes(meta.CheckpointParameters(), source, config);

        var model = new LlamaForCausalLM(config, options.DType, options.Device ?? CPU);
        try
        {
            IReadOnlyDictionary<string, Tensor> parameters = model.CheckpointParameters();
            if (extra is not null) parameters = parameters.Concat(extra).ToDictionary();
            IProgress<LoadProgress>? progress = options.Progress;
            if (options.Weights != WeightFormat.Fp32)
            {
                model.CheckPackable(options.Weights);
                progress = new PackAsRead(model, options.Weights, progress);
            }
            StrictLoader.Load(parameters, source, IsDerivedBuffer, progress, cancellationToken);
            model.eval();
            model.PackWeights(options.Weights);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Packs each layer as soon as the tensors its packing frees are read, and the head once read, so a packed load holds the
    /// float32 copy of about one layer at a time (the rest of the model's float32 buffers are allocated but never
    /// written before being released, so they take address space, not memory).
    /// </summary>
    private sealed class PackAsRead : IProgress<LoadProgress>
    {
        private readonly LlamaForCausalLM model;
        private readonly WeightFormat format;
        private readonly IProgress<LoadProgress>? inner;
        private readonly IReadOnlyDictionary<string, int> layerOf;
        private readonly int[] unread;
        private readonly string head;

        public PackAsRead(LlamaForCausalLM model, WeightFormat format, IProgress<LoadProgress>? inner)
        {
            (this.model, this.format, this.inner) = (model, format, inner);
            layerOf = model.PackedTensorLayers();
            unread = new int[model.Config.NumHiddenLayers];
            foreach (int layer in layerOf.Values) unread[layer]++;
            head = model.Config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
        }

        public void Report(LoadProgress value)
        {
            inner?.Report(value);
            if (value.CurrentName == head) model.PackHead(format);
            else if (layerOf.TryGetValue(value.CurrentName, out int layer) && --unread[layer] == 0) model.PackLayer(layer, format);
        }
    }

    private static void CheckShapes(IReadOnlyDictionary<string, Tensor> expected, ITensorSource source, LlamaConfig config)
    {
        var wrong = new List<string>();
        foreach ((string name, Tensor parameter) in expected)
        {
            if (source.Entries.TryGetValue(name, out TensorEntry? entry) && !entry.Shape.SequenceEqual(parameter.shape))
                wrong.Add($"{name} is [{string.Join(", ", entry.Shape)}] in the checkpoint but config.json implies [{string.Join(", ", parameter.shape)}]");
        }
        if (wrong.Count > 0)
        {
            throw new ModelConfigException(
                $"config.json (hidden {config.HiddenSize}, layers {config.NumHiddenLayers}, heads {config.NumAttentionHeads}/{config.KeyValueHeads}, " +
                $"ffn {config.IntermediateSize}, vocab {config.VocabSize}) disagrees with the weights: " +
                string.Join("; ", wrong.Take(10)) + (wrong.Count > 10 ? $"; and {wrong.Count - 10} more" : ""));
        }
    }

    /// <summary>Parses a dtype name as users write it (fp32, float16, bf16, ...).</summary>
    /// <summary>fp32, fp16 or bf16 (and their long names), as options and flags spell them.</summary>
    public static ScalarType ParseDType(string name) => LLark.Checkpoints.RunTimeDTypes.Parse(name, LLark.Checkpoints.RunTimeDTypes.Language);
}
