using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;
using static LLark.Checkpoints.KeptScalars;

namespace LLark.Language.Engine.Model;

/// <summary>
/// Llama's RMSNorm: x * rsqrt(mean(x^2) + eps) * weight, with the statistics in float32 whatever the
/// run-time dtype (as Hugging Face does), and the weight multiplying directly (not 1 + weight).
/// </summary>
internal sealed class RmsNorm : nn.Module
{
    private readonly Parameter weight;
    private readonly double eps;
    private readonly Scalar epsScalar;

    public RmsNorm(string name, long size, double eps, ScalarType dtype, Device device) : base(name)
    {
        weight = new Parameter(empty(size, dtype: dtype, device: device), requires_grad: false);
        this.eps = eps;
        epsScalar = eps.ToScalar(); // kept by the module, not a temporary (see LLark.Checkpoints.KeptScalars)
        RegisterComponents();
    }

    internal Tensor Weight => weight;

    internal double Eps => eps;

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor h = x.dtype == ScalarType.Float32 ? x : x.to(ScalarType.Float32);
        Tensor inv = h.pow(Two).mean([-1], keepdim: true).add_(epsScalar, One).rsqrt_();
        Tensor normed = h.mul(inv);
        if (normed.dtype != x.dtype) normed = normed.to(x.dtype);
        return normed.mul_(weight).MoveToOuterDisposeScope();
    }
}
