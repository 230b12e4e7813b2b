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

    /// <summary>
    /// The channel block of libtorch's oneDNN f32 convolutions on x64 (16 lanes with AVX-512, 8 with AVX2): their
    /// blocked layouts round the channels up to it.
    /// </summary>
    internal const long OneDnnChannelBlock = 16;

    public Tensor Forward(Tensor x)
    {
        long outChannels = weight.shape[0];
        if (outChannels % OneDnnChannelBlock == 0 || !x.requires_grad || !is_grad_enabled())
            return nn.functional.conv1d(x, weight, bias, stride: stride, padding: padding, dilation: dilation);
        // The gradient with respect to x will be taken, and libtorch's oneDNN (3.7.1) gets it wrong when the output
        // channels do not fill whole blocks: on a Zen 5 (AVX-512) every element of a 6-channel conv's input gradient
        // came out wrong, by up to the gradient's own size, and NaN (whole channels) whenever the allocator handed its
        // blocked buffers memory holding a NaN (a VQ-VAE run went NaN about 1 run in 4). With zero weight rows up to a
        // whole block, the same kernels give the float64 gradient to 1e-6. The extra channels are exact zeros, sliced
        // off; the outputs are bit for bit those of the plain call (oneDNN computed a padded block of 16 anyway).
        using var scope = NewDisposeScope();
        long extra = OneDnnChannelBlock - outChannels % OneDnnChannelBlock;
        Tensor blockWeight = nn.functional.pad(weight, [0, 0, 0, 0, 0, extra]);
        Tensor blockBias = nn.functional.pad(bias, [0, extra]);
        return nn.functional.conv1d(x, blockWeight, blockBias, stride: stride, padding: padding, dilation: dilation)
            .narrow(1, 0, outChannels).MoveToOuterDisposeScope();
    }
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
