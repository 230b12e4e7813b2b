using TorchSharp;
using static TorchSharp.torch;
using LLark.Checkpoints;

namespace LLark.Language.Engine.Model;

/// <summary>
/// Llama with its language-model head. Parameter names equal the Hugging Face checkpoint keys
/// (<c>model.layers.0.self_attn.q_proj.weight</c>, <c>lm_head.weight</c>, ...), so a state dict loads strictly.
/// </summary>
public sealed unsafe class LlamaForCausalLM : nn.Module
{
    private readonly LlamaModel model;
    private readonly Linear? lm_head;
    private readonly RotaryEmbedding rope;
    private Lazy<DecodeStep?> decodeStep;

    /// <summary>Layers packed so far, until <see cref="PackWeights"/> hands them to the decode step.</summary>
    private ModelMatrices? packing;

    /// <summary>Whether a layer has training-time adapters (<see cref="SetAdapters"/>).</summary>
    private bool adapted;

    static LlamaForCausalLM() => LibTorchEnvironment.RequestHugePages();

    public LlamaForCausalLM(LlamaConfig config, ScalarType dtype = ScalarType.Float32, Device? device = null)
        : base("LlamaForCausalLM")
    {
        device ??= CPU;
        Config = config;
        DType = dtype;
        Device = device;
        model = new LlamaModel("model", config, dtype, device);
        // Tied models reuse embed_tokens as the head, and their checkpoints hold no lm_head.weight.
        lm_head = config.TieWordEmbeddings ? null
            : new Linear("lm_head", empty([config.VocabSize, config.HiddenSize], dtype: dtype, device: device));
        RegisterComponents();
        rope = new RotaryEmbedding(config.HeadDim, config.MaxPositionEmbeddings, config.RopeTheta, dtype,
            device.type == DeviceType.META ? CPU : device);
        // Built on first use; the pointers it holds stay valid because loading copies into these tensors.
        decodeStep = new Lazy<DecodeStep?>(() => DecodeStep.TryCreate(Config, model, HeadWeight, rope));
    }

    public LlamaConfig Config { get; }
    public ScalarType DType { get; }
    public Device Device { get; }

    /// <summary>
    /// How the managed CPU kernels hold the projections and the head: float32 unless <see cref="PackWeights"/> ran, which
    /// released the float32 tensors.
    /// </summary>
    public WeightFormat WeightFormat { get; private set; } = WeightFormat.Fp32;

    /// <summary>Bytes of weights one decode step reads (projections and head); 0 where the managed steps do not run.</summary>
    public long StepWeightBytes => ManagedStep?.WeightBytes ?? 0;

    /// <summary>
    /// Converts the projections and the head to <paramref name="format"/> for the managed CPU kernels and frees their
    /// float32 tensors, so the model then holds (and a decode step reads) a half or about a quarter of the bytes. The
    /// embedding table, the norms and the KV cache stay float32. Inference only, and only through the managed steps:
    /// training, hidden-state capture and the libtorch forward need the float32 weights and refuse a packed model.
    /// Layers the loader packed as it read them (<see cref="PackLayer"/>) are kept.
    /// </summary>
    public void PackWeights(WeightFormat format)
    {
        if (packing is null && (format == WeightFormat.Fp32 || format == WeightFormat)) return;
        CheckPackable(format);
        for (int l = 0; l < Config.NumHiddenLayers; l++) PackLayer(l, format);
        PackHead(format);
        DecodeStep step = DecodeStep.TryCreate(Config, model, HeadWeight, rope, packing)
            ?? throw new NotSupportedException("the managed CPU kernels cannot run this model (a weight is not contiguous)");
        packing = null;
        if (decodeStep.IsValueCreated) decodeStep.Value?.Dispose();
        decodeStep = new Lazy<DecodeStep?>(() => step);
        WeightFormat = format;
        // Tensors that viewed the released storage may still be waiting for finalization.
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    /// <summary>Throws unless the managed kernels can run this model with its weights in <paramref name="format"/>.</summary>
    internal void CheckPackable(WeightFormat format)
    {
        if (format == WeightFormat.Fp32) throw new ArgumentException("fp32 weights are the model's own tensors, not a packed format", nameof(format));
        if (WeightFormat != WeightFormat.Fp32) throw new InvalidOperationException($"the weights are already packed as {WeightFormat.Name()}");
        if (packing is not null && packing.Format != format)
            throw new InvalidOperationException($"the weights are being packed as {packing.Format.Name()}, not {format.Name()}");
        if (adapted) throw new InvalidOperationException("a model with training-time adapters cannot be packed");
        if (DType != ScalarType.Float32 || Device.type != DeviceType.CPU)
            throw new NotSupportedException($"packed {format.Name()} weights run on the managed CPU kernels, which take a float32 CPU model (this one is {DType} on {Device.type})");
    }

    /// <summary>Packs layer <paramref name="layer"/>'s projections and frees their float32 tensors (the loader calls it once the layer is read).</summary>
    internal void PackLayer(int layer, WeightFormat format)
    {
        CheckPackable(format);
        packing ??= new ModelMatrices(Config, format);
        if (packing.HasLayer(layer)) return;
        LlamaDecoderLayer b = model.Blocks[layer];
        packing.SetLayer(layer, b.Attention.QkvWeight, b.Attention.OutWeight, b.Mlp.GateUpWeight, b.Mlp.DownWeight);
        Release(b.Attention.ProjectionTensors().Concat(b.Mlp.ProjectionTensors()));
    }

    /// <summary>
    /// The checkpoint name of each tensor <see cref="PackLayer"/> packs and frees, with its layer: a load that packs as it
    /// reads packs a layer once it has read all of that layer's names.
    /// </summary>
    internal IReadOnlyDictionary<string, int> PackedTensorLayers()
    {
        var layerOf = new Dictionary<nint, int>();
        for (int l = 0; l < model.Blocks.Count; l++)
        {
            foreach (Tensor t in model.Blocks[l].Attention.ProjectionTensors().Concat(model.Blocks[l].Mlp.ProjectionTensors()))
                layerOf[(nint)NativeTensor.DataPointer(t)] = l;
        }
        var layers = new Dictionary<string, int>();
        foreach ((string name, Tensor parameter) in CheckpointParameters())
        {
            if (layerOf.TryGetValue((nint)NativeTensor.DataPointer(parameter), out int layer)) layers[name] = layer;
        }
        return layers;
    }

    /// <summary>Packs the head (a copy of the embedding table when tied, which stays float32) and frees its float32 tensor.</summary>
    internal void PackHead(WeightFormat format)
    {
        CheckPackable(format);
        packing ??= new ModelMatrices(Config, format);
        if (packing.HasHead) return;
        packing.SetHead(HeadWeight);
        if (lm_head is not null) Release([lm_head.Weight]);
    }

    /// <summary>Points each tensor at an empty storage, so the weights' memory goes once nothing else views it.</summary>
    private static void Release(IEnumerable<Tensor> tensors)
    {
        using Tensor nothing = empty(0, dtype: ScalarType.Float32);
        foreach (Tensor t in tensors) t.set_(nothing);
    }

    /// <summary>
    /// Runs each managed kernel path (a short prefill, a decode step, a batched step) on a scratch cache, repeatedly for
    /// about a quarter of a second (at least once), so the first request does not wait for the JIT. The kernels are
    /// compiled fully optimised on first call (<c>AggressiveOptimization</c>); the runtime's own vector math they call
    /// (<c>Vector256.Exp</c>) starts unoptimised and is recompiled only once it has been called for a while after the
    /// last new method was compiled, which the repetition gives it. Does nothing for models the managed steps do not run.
    /// </summary>
    public void WarmUp()
    {
        if (ManagedStep is null) return;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var logits = new float[2 * Config.VocabSize];
        // Nine prompt rows: blocks of four query rows and a single one, pairs of rows in the product tiles and one alone.
        int rows = Math.Min(9, Config.MaxPositionEmbeddings - 1);
        using KvCache cache = NewCache(rows + 1);
        using BatchKvCache batch = NewBatchCache(2, 2);
        using Tensor ids = tensor(Enumerable.Range(1, rows).Select(i => (long)(i % Config.VocabSize)).ToArray(), dtype: ScalarType.Int64).view(1, rows);
        do
        {
            using var scope = NewDisposeScope();
            cache.Reset();
            batch.Slot(0).Reset();
            batch.Slot(1).Reset();
            Forward(Embed(ids), cache, lastOnly: true);
            DecodeToken(3, cache, logits.AsSpan(0, Config.VocabSize));
            DecodeBatch([1, 2], batch, logits);
        }
        while (clock.Elapsed < WarmUpTime);
    }

    /// <summary>How long <see cref="WarmUp"/> repeats the kernels: past the runtime's 100 ms wait before it counts calls.</summary>
    private static readonly TimeSpan WarmUpTime = TimeSpan.FromMilliseconds(250);

    private void RefuseIfPacked(string what)
    {
        if (WeightFormat != WeightFormat.Fp32 || packing is not null)
            throw new InvalidOperationException($"{what} needs the float32 weights, and this model's are packed as {(packing?.Format ?? WeightFormat).Name()} for the managed CPU kernels");
    }

    private Tensor HeadWeight => lm_head?.Weight ?? model.EmbedTokens.Weight;

    /// <summary>Token embeddings [b, t, hidden] of ids [b, t]: the rows a multimodal prompt splices into.</summary>
    public Tensor Embed(Tensor ids) => model.EmbedTokens.Forward(ids);

    /// <summary>The embedding matrix [vocab, hidden].</summary>
    public Tensor EmbeddingWeight => model.EmbedTokens.Weight;

    /// <summary>
    /// Runs embeddings [b, t, hidden] at the cache's next positions and advances the cache. Returns float32
    /// logits [b, t, vocab], or [b, 1, vocab] for the last position only when <paramref name="lastOnly"/>.
    /// </summary>
    public Tensor Forward(Tensor inputsEmbeds, KvCache cache, bool lastOnly = true, List<Tensor>? hiddenStates = null)
    {
        if (inputsEmbeds.dim() != 3 || inputsEmbeds.shape[2] != Config.HiddenSize)
            throw new ArgumentException($"inputs_embeds must be [batch, tokens, {Config.HiddenSize}], got [{string.Join(", ", inputsEmbeds.shape)}]");
        if (inputsEmbeds.shape[0] != cache.BatchSize)
            throw new ArgumentException($"batch {inputsEmbeds.shape[0]} does not match the cache's {cache.BatchSize}");
        int t = (int)inputsEmbeds.shape[1];
        if (t == 0) throw new ArgumentException("inputs_embeds holds no tokens");
        if (hiddenStates is null && cache.BatchSize == 1 && ManagedStep is { } step)
        {
            using Tensor rows = inputsEmbeds.to(ScalarType.Float32).contiguous();
            Tensor output = empty([1, lastOnly ? 1 : t, Config.VocabSize], dtype: ScalarType.Float32);
            float* input = (float*)NativeTensor.DataPointer(rows), logits = (float*)NativeTensor.DataPointer(output);
            if (t == 1) step.Run(input, cache, logits);
            else step.Prefill(input, t, cache, logits, lastOnly);
            return output;
        }
        return ForwardLibTorch(inputsEmbeds, cache, lastOnly, hiddenStates);
    }

    /// <summary><see cref="Forward"/> through libtorch's ops, whatever the model's dtype and device (the reference the managed steps are held to).</summary>
    internal Tensor ForwardLibTorch(Tensor inputsEmbeds, KvCache cache, bool lastOnly = true, List<Tensor>? hiddenStates = null)
    {
        RefuseIfPacked(hiddenStates is null ? "the libtorch forward" : "capturing hidden states");
        int t = (int)inputsEmbeds.shape[1];
        cache.EnsureRoom(t);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor x = inputsEmbeds.dtype == DType ? inputsEmbeds : inputsEmbeds.to(DType);
        int before = hiddenStates?.Count ?? 0;
        (Tensor cos, Tensor signedSin) = rope.Slice(cache.Length, t);
        Tensor? mask = LlamaAttention.PrefillMask(t, Config.NumAttentionHeads / Config.KeyValueHeads, cache.Length, Device);
        var plan = new AttentionPlan(cos, signedSin, cache, mask, Causal: mask is null && t > 1);
        Tensor h = model.Forward(x, rope, plan, hiddenStates);
        // The layer outputs belong to the caller, not to this scope.
        for (int i = before; i < (hiddenStates?.Count ?? 0); i++) hiddenStates![i].MoveToOuterDisposeScope();
        cache.Advance(t);
        if (lastOnly && t > 1) h = h.narrow(1, t - 1, 1);
        Tensor logits = Linear.Apply(h, HeadWeight);
        if (logits.dtype != ScalarType.Float32) logits = logits.to(ScalarType.Float32);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The training forward: embeddings [b, t, hidden] from position 0, causal, no cache and with autograd on.
    /// Returns float32 logits [n, vocab] for the flattened positions <paramref name="scoredPositions"/> (indices
    /// into b * t) only: the head over a 32k vocabulary at every position would cost more memory than the model.
    /// Right padding needs no attention mask, because no real token ever attends to a later position.
    /// </summary>
    public Tensor ForwardTraining(Tensor inputsEmbeds, Tensor scoredPositions)
    {
        if (inputsEmbeds.dim() != 3 || inputsEmbeds.shape[2] != Config.HiddenSize)
            throw new ArgumentException($"inputs_embeds must be [batch, tokens, {Config.HiddenSize}], got [{string.Join(", ", inputsEmbeds.shape)}]");
        RefuseIfPacked("training");
        long b = inputsEmbeds.shape[0], t = inputsEmbeds.shape[1];
        if (t > Config.MaxPositionEmbeddings) throw new ContextLengthException((int)t, Config.MaxPositionEmbeddings);
        using var scope = NewDisposeScope();
        Tensor x = inputsEmbeds.dtype == DType ? inputsEmbeds : inputsEmbeds.to(DType);
        (Tensor cos, Tensor signedSin) = rope.Slice(0, t);
        Tensor? mask = LlamaAttention.PrefillMask(t, Config.NumAttentionHeads / Config.KeyValueHeads, 0, Device);
        var plan = new AttentionPlan(cos, signedSin, PassThroughStore.Instance, mask, Causal: mask is null && t > 1);
        Tensor h = model.Forward(x, rope, plan).view(b * t, Config.HiddenSize).index_select(0, scoredPositions);
        Tensor logits = Linear.Apply(h, HeadWeight);
        if (logits.dtype != ScalarType.Float32) logits = logits.to(ScalarType.Float32);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The managed steps (a float32 CPU model), unless a layer has training-time adapters, which only the libtorch path
    /// applies.
    /// </summary>
    private DecodeStep? ManagedStep => adapted || packing is not null ? null : decodeStep.Value;

    /// <summary>Sets (or, with null, removes) the training-time projection adapters of decoder layer <paramref name="layer"/>.</summary>
    internal void SetAdapters(int layer, ProjectionAdapters? adapters)
    {
        if (adapters is not null) RefuseIfPacked("training-time adapters");
        model.Blocks[layer].Attention.Adapters = adapters;
        model.Blocks[layer].Mlp.Adapters = adapters;
        adapted = model.Blocks.Any(b => b.Attention.Adapters is not null || b.Mlp.Adapters is not null);
    }

    /// <summary>Keys and values of a whole-sequence forward: attended over as they are, kept nowhere.</summary>
    private sealed class PassThroughStore : IKvStore
    {
        public static readonly PassThroughStore Instance = new();

        public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v) => (k, v);
    }

    /// <summary>
    /// The tensors the forward actually multiplies by, under their checkpoint names, for training: q/k/v and
    /// gate/up are one fused tensor each (<c>model.layers.N.self_attn.qkv_proj.weight</c>,
    /// <c>model.layers.N.mlp.gate_up_proj.weight</c>) whose rows the checkpoint's q/k/v and gate/up weights alias.
    /// </summary>
    internal IReadOnlyList<(string Name, Tensor Tensor)> ForwardTensors()
    {
        var list = new List<(string, Tensor)> { ("model.embed_tokens.weight", model.EmbedTokens.Weight) };
        for (int i = 0; i < model.Blocks.Count; i++)
        {
            LlamaDecoderLayer block = model.Blocks[i];
            string p = $"model.layers.{i}.";
            list.Add((p + "self_attn.qkv_proj.weight", block.Attention.QkvWeight));
            list.Add((p + "self_attn.o_proj.weight", block.Attention.OutWeight));
            list.Add((p + "mlp.gate_up_proj.weight", block.Mlp.GateUpWeight));
            list.Add((p + "mlp.down_proj.weight", block.Mlp.DownWeight));
            list.Add((p + "input_layernorm.weight", block.InputNorm.Weight));
            list.Add((p + "post_attention_layernorm.weight", block.PostAttentionNorm.Weight));
        }
        list.Add(("model.norm.weight", model.Norm.Weight));
        if (lm_head is not null) list.Add(("lm_head.weight", lm_head.Weight));
        return list;
    }

    /// <summary>Forward from token ids [b, t].</summary>
    public Tensor ForwardIds(Tensor ids, KvCache cache, bool lastOnly = true, List<Tensor>? hiddenStates = null)
    {
        using Tensor embeds = Embed(ids);
        return Forward(embeds, cache, lastOnly, hiddenStates);
    }

    /// <summary>
    /// One decode step for the sequences in slots 0..n-1 of <paramref name="cache"/>: token i is fed to slot i at that
    /// slot's own position, and every slot advances by one. Returns float32 logits [n, vocab].
    /// </summary>
    public Tensor DecodeBatch(IReadOnlyList<int> tokenIds, BatchKvCache cache)
    {
        if (ManagedStep is null) return DecodeBatchLibTorch(tokenIds, cache);
        int[] ids = [.. tokenIds];
        if (ids.Length < 1 || ids.Length > cache.Slots) throw new ArgumentOutOfRangeException(nameof(tokenIds), $"{ids.Length} sequences for {cache.Slots} slots");
        Tensor logits = empty([ids.Length, Config.VocabSize], dtype: ScalarType.Float32);
        try
        {
            DecodeBatch(ids, cache, new Span<float>((void*)NativeTensor.DataPointer(logits), ids.Length * Config.VocabSize));
        }
        catch
        {
            logits.Dispose();
            throw;
        }
        return logits;
    }

    /// <summary>
    /// <see cref="DecodeBatch(IReadOnlyList{int}, BatchKvCache)"/> into <paramref name="logits"/> [n * vocab]: the
    /// managed batched step (one read of every weight for all n rows) for a float32 CPU model, libtorch otherwise.
    /// </summary>
    internal void DecodeBatch(ReadOnlySpan<int> tokenIds, BatchKvCache cache, Span<float> logits)
    {
        int n = tokenIds.Length;
        if (n < 1 || n > cache.Slots) throw new ArgumentOutOfRangeException(nameof(tokenIds), $"{n} sequences for {cache.Slots} slots");
        if (logits.Length != n * Config.VocabSize) throw new ArgumentException($"logits must hold {n} x {Config.VocabSize} values", nameof(logits));
        if (ManagedStep is { } step)
        {
            fixed (float* l = logits) step.RunBatch(tokenIds, cache, l);
            return;
        }
        using var scope = NewDisposeScope();
        NativeTensor.CopyTo(DecodeBatchLibTorch(tokenIds.ToArray(), cache), logits);
    }

    /// <summary>Whether decode steps of this model run in managed code (a float32 CPU model) rather than through libtorch.</summary>
    internal bool DecodesInManagedCode => ManagedStep is not null;

    /// <summary>
    /// The batched decode step through libtorch's ops: what non-float32 and non-CPU models run, and the reference the
    /// managed step is checked against.
    /// </summary>
    internal Tensor DecodeBatchLibTorch(IReadOnlyList<int> tokenIds, BatchKvCache cache)
    {
        RefuseIfPacked("the libtorch decode step");
        int n = tokenIds.Count;
        if (n < 1 || n > cache.Slots) throw new ArgumentOutOfRangeException(nameof(tokenIds), $"{n} sequences for {cache.Slots} slots");
        var positions = new int[n];
        for (int i = 0; i < n; i++)
        {
            KvCache slot = cache.Slot(i);
            slot.EnsureRoom(1);
            positions[i] = slot.Length;
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor ids = tensor(tokenIds.Select(i => (long)i).ToArray(), dtype: ScalarType.Int64, device: Device).view(n, 1);
        Tensor positionIndex = tensor(positions.Select(p => (long)p).ToArray(), dtype: ScalarType.Int64, device: Device);
        // Per-row tables [n, 1, 1, d] broadcast over heads; row i sees keys 0..positions[i].
        (Tensor cos, Tensor signedSin) = rope.Gather(positionIndex);
        int visible = positions.Max() + 1;
        Tensor mask = KeptScalars.Range(0, visible, Device).unsqueeze(0).le(positionIndex.unsqueeze(1)).view(n, 1, 1, visible);
        var plan = new AttentionPlan(cos, signedSin, cache.StepStore(positions, positionIndex, Device), mask, Causal: false);
        Tensor h = model.Forward(model.EmbedTokens.Forward(ids), rope, plan);
        for (int i = 0; i < n; i++) cache.Slot(i).SetLength(positions[i] + 1);
        Tensor logits = Linear.Apply(h, HeadWeight).view(n, -1);
        if (logits.dtype != ScalarType.Float32) logits = logits.to(ScalarType.Float32);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>A cache for <paramref name="slots"/> sequences decoding together, each up to <paramref name="capacity"/> tokens.</summary>
    public BatchKvCache NewBatchCache(int slots, int capacity) => new(Config, slots, capacity, DType, Device);

    /// <summary>
    /// One decode step for token <paramref name="id"/> at the cache's next position: advances the cache and
    /// writes float32 logits [vocab] into <paramref name="logits"/>.
    /// </summary>
    internal void DecodeToken(int id, KvCache cache, Span<float> logits)
    {
        if ((uint)id >= (uint)Config.VocabSize) throw new ArgumentOutOfRangeException(nameof(id), $"token id {id} is outside the vocabulary");
        if (logits.Length != Config.VocabSize) throw new ArgumentException($"logits must hold {Config.VocabSize} values", nameof(logits));
        if (cache.BatchSize == 1 && ManagedStep is { } step)
        {
            fixed (float* l = logits) step.Run(step.Embedding(id), cache, l);
            return;
        }
        using var scope = NewDisposeScope();
        Tensor ids = tensor(new long[] { id }, dtype: ScalarType.Int64, device: Device).view(1, 1);
        NativeTensor.CopyTo(ForwardIds(ids, cache, lastOnly: true), logits);
    }

    /// <summary>Checkpoint name to parameter, for strict loading.</summary>
    public IReadOnlyDictionary<string, Tensor> CheckpointParameters() =>
        named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    public KvCache NewCache(int capacity, int batchSize = 1) => new(Config, batchSize, capacity, DType, Device);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            rope.Dispose();
            packing?.Dispose();
            if (decodeStep.IsValueCreated) decodeStep.Value?.Dispose();
        }
        base.Dispose(disposing);
    }
}
