using LLark.Language.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Training;

/// <summary>
/// LoRA as PEFT computes it, on the engine's projections: out = W x + (alpha / r) · B A dropout(x), with A [r, in]
/// uniform in ±1/sqrt(in) (nn.Linear's default, PEFT's kaiming_uniform with a = sqrt 5) and B [out, r] zero, so training
/// starts from the base model exactly. Each targeted projection draws its own dropout mask. The dropout generator is
/// reseeded from (seed, step) at every step, so a resumed run draws the same masks without saving any RNG state.
/// </summary>
internal sealed class LoraAdapters : IDisposable
{
    public static readonly IReadOnlyList<string> AllTargets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    private readonly List<Adapter> adapters = [];
    private readonly double dropout;

    // The numbers of every adapted forward as kept Scalars: a temporary one can be freed mid-call (see KeptScalars).
    private readonly Scalar scalingScalar, dropoutScalar, keptShare;
    private readonly int seed;
    private readonly Generator dropoutGenerator = new(0);

    /// <summary>One adapted projection: its checkpoint weight name and the two low-rank factors.</summary>
    internal sealed record Adapter(string WeightName, Tensor A, Tensor B);

    public LoraAdapters(LlamaForCausalLM llama, LoraConfig config, int seed, Generator init)
    {
        Scaling = config.Alpha / config.R;
        dropout = config.Dropout;
        scalingScalar = Scaling.ToScalar();
        dropoutScalar = dropout.ToScalar();
        keptShare = (1 - dropout).ToScalar();
        this.seed = seed;
        LlamaConfig c = llama.Config;
        long hidden = c.HiddenSize, q = (long)c.NumAttentionHeads * c.HeadDim, kv = (long)c.KeyValueHeads * c.HeadDim, ffn = c.IntermediateSize;
        var shapes = new Dictionary<string, (string Module, long In, long Out)>
        {
            ["q_proj"] = ("self_attn", hidden, q), ["k_proj"] = ("self_attn", hidden, kv), ["v_proj"] = ("self_attn", hidden, kv),
            ["o_proj"] = ("self_attn", q, hidden), ["gate_proj"] = ("mlp", hidden, ffn), ["up_proj"] = ("mlp", hidden, ffn),
            ["down_proj"] = ("mlp", ffn, hidden),
        };
        for (int layer = 0; layer < c.NumHiddenLayers; layer++)
        {
            var made = new Dictionary<string, Adapter>();
            foreach (string target in config.Targets)
            {
                (string module, long inDim, long outDim) = shapes[target];
                double bound = 1.0 / Math.Sqrt(inDim);
                Tensor a = empty([config.R, inDim], dtype: ScalarType.Float32).uniform_(-bound, bound, init).to(llama.Device).requires_grad_(true);
                Tensor b = zeros([outDim, config.R], dtype: ScalarType.Float32, device: llama.Device).requires_grad_(true);
                var adapter = new Adapter($"model.layers.{layer}.{module}.{target}.weight", a, b);
                made[target] = adapter;
                adapters.Add(adapter);
            }
            Func<Tensor, Tensor>? Fused(params (string Target, long Rows)[] parts) => parts.Any(p => made.ContainsKey(p.Target))
                ? x => cat([.. parts.Select(p => made.TryGetValue(p.Target, out Adapter? ad) ? Delta(ad, x) : x.new_zeros([.. x.shape[..^1], p.Rows]))], -1)
                : null;
            Func<Tensor, Tensor>? Single(string target) => made.TryGetValue(target, out Adapter? ad) ? x => Delta(ad, x) : null;
            llama.SetAdapters(layer,
                new ProjectionAdapters(Fused(("q_proj", q), ("k_proj", kv), ("v_proj", kv)), Single("o_proj"),
                    Fused(("gate_proj", ffn), ("up_proj", ffn)), Single("down_proj")));
        }
    }

    public double Scaling { get; }

    /// <summary>Dropout is applied only while this is set (training steps, not validation).</summary>
    public bool Training { get; set; }

    public IReadOnlyList<Adapter> All => adapters;

    /// <summary>The trained tensors under PEFT's names (without its base_model.model prefix).</summary>
    public IEnumerable<TrainedTensor> Tensors() => adapters.SelectMany(a => new[]
    {
        new TrainedTensor(a.WeightName.Replace(".weight", ".lora_A.weight", StringComparison.Ordinal), a.A),
        new TrainedTensor(a.WeightName.Replace(".weight", ".lora_B.weight", StringComparison.Ordinal), a.B),
    });

    public void BeginStep(int step) => dropoutGenerator.manual_seed(unchecked(seed * 1_000_003L + step + 0x10AA));

    /// <summary>(alpha / r) · B A for a checkpoint weight name, or null when that projection has no adapter.</summary>
    public Tensor? Merged(string weightName)
    {
        Adapter? a = adapters.Find(x => x.WeightName == weightName);
        if (a is null) return null;
        using var noGrad = no_grad();
        return a.B.matmul(a.A).mul_(scalingScalar);
    }

    private Tensor Delta(Adapter a, Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor input = x;
        if (Training && dropout > 0)
        {
            Tensor keep = rand(x.shape, dtype: ScalarType.Float32, generator: dropoutGenerator).ge_(dropoutScalar).to(x.dtype, x.device);
            input = x.mul(keep).div_(keptShare);
        }
        // The factors are float32 over a base that may be bf16: compute the delta in float32, add it in the base's dtype.
        Tensor delta = nn.functional.linear(nn.functional.linear(input.to(a.A.dtype), a.A), a.B).mul_(scalingScalar);
        return delta.to(x.dtype).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        foreach (Adapter a in adapters)
        {
            a.A.Dispose();
            a.B.Dispose();
        }
        dropoutGenerator.Dispose();
        scalingScalar.Dispose();
        dropoutScalar.Dispose();
        keptShare.Dispose();
    }
}
