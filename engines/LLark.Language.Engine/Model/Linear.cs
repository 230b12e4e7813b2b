using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace LLark.Language.Engine.Model;

/// <summary>
/// A bias-free linear layer over a weight [out, in] that the caller allocates. Unlike nn.Linear it never
/// initialises the weight (a 7B model would spend minutes on random numbers that loading overwrites), and
/// the weight may be a view into a fused buffer.
/// </summary>
internal sealed class Linear : nn.Module
{
    private readonly Parameter weight;

    public Linear(string name, Tensor weightStorage) : base(name)
    {
        weight = new Parameter(weightStorage, requires_grad: false);
        RegisterComponents();
    }

    public Tensor Weight => weight;

    public Tensor Forward(Tensor x) => Apply(x, weight);

    /// <summary>x · weightᵀ, through the decode kernel when x has only a few rows.</summary>
    public static Tensor Apply(Tensor x, Tensor weight) =>
        SkinnyMatMul.Applies(x, weight) ? SkinnyMatMul.Forward(x, weight) : nn.functional.linear(x, weight);
}
