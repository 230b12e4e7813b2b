using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;
using static LLark.Checkpoints.KeptScalars;

namespace LLark.Encoder.Engine.Model;

/// <summary>
/// A module whose children are named like the entries of a PyTorch <c>nn.Sequential</c> or <c>nn.ModuleList</c>
/// ("0", "1", "3"), so parameter names come out exactly as the checkpoint spells them. It has no forward: the
/// owner runs its children.
/// </summary>
internal sealed class Children : nn.Module
{
    public Children(string name, IEnumerable<(string Name, nn.Module Module)> children) : base(name)
    {
        foreach (var (childName, module) in children)
            register_module(childName, module);
    }
}

/// <summary>A torch <c>nn.Conv1d</c>: <c>weight</c> [out, in, kernel] and <c>bias</c> [out].</summary>
internal sealed class Conv1d : nn.Module
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly long stride;
    private readonly long padding;
    private readonly long dilation;

    public Conv1d(string name, long inChannels, long outChannels, long kernel, long stride, long padding, long dilation, Device device)
        : base(name)
    {
        weight = new Parameter(empty([outChannels, inChannels, kernel], dtype: ScalarType.Float32, device: device), requires_grad: false);
        bias = new Parameter(empty([outChannels], dtype: ScalarType.Float32, device: device), requires_grad: false);
        this.stride = stride;
        this.padding = padding;
        this.dilation = dilation;
        RegisterComponents();
    }

    public Tensor Forward(Tensor x) => nn.functional.conv1d(x, weight, bias, stride: stride, padding: padding, dilation: dilation);
}

/// <summary>
/// Jukebox's <c>Conv1D</c>: <c>x @ w + b</c> with <c>w</c> stored [in, out] (the transpose of a Linear weight).
/// The checkpoint keeps <c>w</c> in float16; it runs in the matrix type chosen at load (float32 or bfloat16) and
/// the result is float32 either way.
/// </summary>
internal sealed class JukeboxConv1D : nn.Module
{
    private readonly Parameter w;
    private readonly Parameter b;

    public JukeboxConv1D(string name, long inFeatures, long outFeatures, ScalarType matrixType, Device device) : base(name)
    {
        w = new Parameter(empty([inFeatures, outFeatures], dtype: matrixType, device: device), requires_grad: false);
        b = new Parameter(empty([outFeatures], dtype: ScalarType.Float32, device: device), requires_grad: false);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor flat = x.reshape(-1, x.shape[^1]);
        Tensor y = w.dtype == ScalarType.Float32
            ? addmm(b, flat, w, beta: 1, alpha: 1)
            : matmul(flat.to(w.dtype), w).to(ScalarType.Float32).add_(b, One);
        return y.view([.. x.shape[..^1], w.shape[1]]).MoveToOuterDisposeScope();
    }
}

/// <summary>A float32 LayerNorm with learned <c>weight</c> and <c>bias</c>.</summary>
internal sealed class LayerNorm : nn.Module
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly double eps;

    public LayerNorm(string name, long width, double eps, Device device) : base(name)
    {
        weight = new Parameter(empty([width], dtype: ScalarType.Float32, device: device), requires_grad: false);
        bias = new Parameter(empty([width], dtype: ScalarType.Float32, device: device), requires_grad: false);
        this.eps = eps;
        RegisterComponents();
    }

    public Tensor Forward(Tensor x) => nn.functional.layer_norm(x, [weight.shape[0]], weight, bias, eps);
}

/// <summary>An embedding table under a parameter name of the checkpoint's choosing (<c>weight</c>, <c>pos_emb</c>).</summary>
internal sealed class Table : nn.Module
{
    public Table(string name, string parameterName, long rows, long width, Device device) : base(name)
    {
        Weight = new Parameter(empty([rows, width], dtype: ScalarType.Float32, device: device), requires_grad: false);
        register_parameter(parameterName, (Parameter)Weight);
    }

    public Tensor Weight { get; }

    public Tensor Lookup(Tensor ids) => Weight.index_select(0, ids.reshape(-1)).view([.. ids.shape, Weight.shape[1]]);
}
