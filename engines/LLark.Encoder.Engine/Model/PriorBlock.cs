using TorchSharp;
using static TorchSharp.torch;
using static LLark.Checkpoints.KeptScalars;

namespace LLark.Encoder.Engine.Model;

/// <summary>
/// One pre-LayerNorm block of the prior (<c>prior.transformer._attn_mods.{i}</c>):
/// <c>a = attn(ln_0(h))</c>, <c>m = mlp(ln_1(h + a))</c>, <c>h + a + m</c>.
/// </summary>
internal sealed class PriorBlock : nn.Module
{
    private const double LayerNormEps = 1e-5;

    private readonly JukeboxConv1D c_attn;
    private readonly JukeboxConv1D attnProj;
    private readonly JukeboxConv1D c_fc;
    private readonly JukeboxConv1D mlpProj;
    private readonly LayerNorm ln_0;
    private readonly LayerNorm ln_1;
    private readonly AttentionKind kind;
    private readonly PriorConfig config;

    public PriorBlock(string name, int layer, PriorConfig config, ScalarType matrixType, Device device) : base(name)
    {
        this.config = config;
        kind = PriorConfig.AttentionOf(layer);
        c_attn = new JukeboxConv1D("c_attn", config.Width, 3L * config.AttnWidth, matrixType, device);
        attnProj = new JukeboxConv1D("c_proj", config.AttnWidth, config.Width, matrixType, device);
        c_fc = new JukeboxConv1D("c_fc", config.Width, config.MlpWidth, matrixType, device);
        mlpProj = new JukeboxConv1D("c_proj", config.MlpWidth, config.Width, matrixType, device);
        ln_0 = new LayerNorm("ln_0", config.Width, LayerNormEps, device);
        ln_1 = new LayerNorm("ln_1", config.Width, LayerNormEps, device);
        register_module("attn", new Children("attn", [("c_attn", c_attn), ("c_proj", attnProj)]));
        register_module("ln_0", ln_0);
        register_module("mlp", new Children("mlp", [("c_fc", c_fc), ("c_proj", mlpProj)]));
        register_module("ln_1", ln_1);
    }

    public AttentionKind Kind => kind;

    public Tensor Forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        Tensor a = Attention(ln_0.Forward(h));
        Tensor m = Mlp(ln_1.Forward(h.add(a, One)));
        return h.add(a, One).add_(m, One).MoveToOuterDisposeScope();
    }

    /// <summary>c_attn gives [q | k | v], each attention-width wide; heads are contiguous slices of each.</summary>
    internal Tensor Attention(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor qkv = c_attn.Forward(x);
        long s = config.AttnWidth;
        Tensor q = qkv.narrow(-1, 0, s), k = qkv.narrow(-1, s, s), v = qkv.narrow(-1, 2 * s, s);
        Tensor a = SparseAttention.Forward(kind, q.contiguous(), k.contiguous(), v.contiguous(), config.Heads, config.BlockCtx);
        return attnProj.Forward(a).MoveToOuterDisposeScope();
    }

    private static readonly Scalar QuickGeluScale = 1.702.ToScalar(); // kept for the process (see KeptScalars)

    /// <summary>c_fc, quick GELU x·σ(1.702x), c_proj.</summary>
    private Tensor Mlp(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor hidden = c_fc.Forward(x);
        hidden = hidden.mul(hidden.mul(QuickGeluScale).sigmoid_());
        return mlpProj.Forward(hidden).MoveToOuterDisposeScope();
    }
}
