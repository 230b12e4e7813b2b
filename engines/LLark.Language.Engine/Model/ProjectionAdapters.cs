using static TorchSharp.torch;

namespace LLark.Language.Engine.Model;

/// <summary>
/// Low-rank additions (LoRA) to a block's projections, for training: each maps the projection's input [.., in] to a
/// delta of its output [.., out] that the module adds to the frozen product. The fused projections take the deltas of
/// their parts concatenated (q, k, v and gate, up). Inference never sets them: a trained adapter is merged into the
/// weights when the checkpoint is written.
/// </summary>
internal sealed record ProjectionAdapters(Func<Tensor, Tensor>? Qkv, Func<Tensor, Tensor>? O, Func<Tensor, Tensor>? GateUp, Func<Tensor, Tensor>? Down);
