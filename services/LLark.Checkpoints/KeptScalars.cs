using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>
/// TorchSharp Scalars that live as long as the process. A TorchSharp <see cref="Scalar"/> is a raw native handle with a
/// finalizer, and a call such as <c>Tensor.add(Tensor)</c> passes a temporary <c>Scalar(1)</c> whose object is
/// unreachable once its handle has been read: a garbage collection on another thread during the native call can
/// finalize it and free the native scalar while libtorch still reads it. That was seen in a long <c>llark eval</c>, as
/// "Expected false to be true" from <c>c10::Scalar::toFloat</c> inside <c>addcmul_</c> and <c>add</c>, after thousands
/// of generations, and as "Unknown scalar type" from <c>pow</c> inside an RMSNorm of a long <c>llark train</c>:
/// <c>Tensor.square()</c> is <c>pow(2)</c> with such a temporary, so code calls <c>pow(Two)</c> instead. Hot paths pass
/// these (or a Scalar field of their module, or a <c>using</c> local, which stays alive until it is disposed after the
/// call) instead of a number.
/// </summary>
public static class KeptScalars
{
    public static readonly Scalar One = 1.0.ToScalar();

    public static readonly Scalar Two = 2.0.ToScalar();

    public static readonly Scalar MinusTwo = (-2.0).ToScalar();
}
