using TorchSharp;
using static TorchSharp.torch;
using static LLark.Checkpoints.KeptScalars;

namespace LLark.Language.Engine.Model;

/// <summary>SwiGLU feed-forward: down(silu(gate(x)) * up(x)); gate and up are views into one fused weight.</summary>
internal sealed class LlamaMlp : nn.Module
{
    private readonly Linear gate_proj;
    private readonly Linear up_proj;
    private readonly Linear down_proj;
    private readonly Tensor gateUpWeight;
    private readonly long intermediate;

    public LlamaMlp(string name, LlamaConfig config, ScalarType dtype, Device device) : base(name)
    {
        intermediate = config.IntermediateSize;
        Tensor fused = empty([2 * intermediate, config.HiddenSize], dtype: dtype, device: device);
        gate_proj = new Linear("gate_proj", fused.narrow(0, 0, intermediate));
        up_proj = new Linear("up_proj", fused.narrow(0, intermediate, intermediate));
        down_proj = new Linear("down_proj", empty([config.HiddenSize, intermediate], dtype: dtype, device: device));
        RegisterComponents();
        gateUpWeight = fused;
    }

    /// <summary>The fused [gate + up, hidden] projection.</summary>
    internal Tensor GateUpWeight => gateUpWeight;

    internal Tensor DownWeight => down_proj.Weight;

    /// <summary>Every tensor that holds this module's projection weights: the fused buffer and the parameters viewing it.</summary>
    internal IEnumerable<Tensor> ProjectionTensors() => [gateUpWeight, gate_proj.Weight, up_proj.Weight, down_proj.Weight];

    /// <summary>Training-time additions to gate/up (fused) and down (LoRA); null at inference.</summary>
    internal ProjectionAdapters? Adapters { get; set; }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor gateUp = Linear.Apply(x, gateUpWeight);
        if (Adapters?.GateUp is { } gateUpDelta) gateUp = gateUp.add(gateUpDelta(x), One);
        Tensor gate = gateUp.narrow(-1, 0, intermediate), up = gateUp.narrow(-1, intermediate, intermediate);
        // Training needs the linear output intact for backward; inference saves the two temporaries.
        Tensor hidden = gateUp.requires_grad ? nn.functional.silu(gate).mul(up) : gate.silu_().mul_(up);
        Tensor output = down_proj.Forward(hidden);
        if (Adapters?.Down is { } downDelta) output = output.add(downDelta(hidden), One);
        return output.MoveToOuterDisposeScope();
    }
}
