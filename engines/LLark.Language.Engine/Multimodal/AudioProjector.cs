using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace LLark.Language.Engine.Multimodal;

/// <summary>LLark's projector: one Linear(audio width -> hidden, bias) per frame, <c>model.mm_projector.*</c> in the checkpoint.</summary>
internal sealed class AudioProjector : nn.Module
{
    private readonly Parameter weight;
    private readonly Parameter bias;

    public AudioProjector(long audioWidth, long hidden, ScalarType dtype, Device device) : base("mm_projector")
    {
        weight = new Parameter(empty([hidden, audioWidth], dtype: dtype, device: device), requires_grad: false);
        bias = new Parameter(empty(hidden, dtype: dtype, device: device), requires_grad: false);
        RegisterComponents();
    }

    /// <summary>Checkpoint names to tensors, for strict loading beside the Llama weights.</summary>
    public Dictionary<string, Tensor> CheckpointParameters() => new()
    {
        ["model.mm_projector.weight"] = weight,
        ["model.mm_projector.bias"] = bias,
    };

    /// <summary>frames [F, width] (any float dtype) -> [F, hidden] in the model's dtype.</summary>
    public Tensor Forward(Tensor frames)
    {
        using var scope = NewDisposeScope();
        Tensor x = frames.to(weight.dtype, weight.device);
        return nn.functional.linear(x, weight, bias).MoveToOuterDisposeScope();
    }
}
