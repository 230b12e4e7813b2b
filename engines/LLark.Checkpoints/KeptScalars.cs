using TorchSharp;
using static TorchSharp.torch;

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
    public static readonly Scalar Zero = 0.0.ToScalar();

    public static readonly Scalar One = 1.0.ToScalar();

    public static readonly Scalar Two = 2.0.ToScalar();

    public static readonly Scalar MinusTwo = (-2.0).ToScalar();

    /// <summary>Integer 0 and 1, for <c>arange</c>'s start and step (an int64 range from a double Scalar would be float).</summary>
    public static readonly Scalar IntZero = 0L.ToScalar();

    public static readonly Scalar IntOne = 1L.ToScalar();

    /// <summary>
    /// <c>arange(0, stop)</c> as int64 with its Scalars kept alive: <c>arange(n)</c> builds three temporaries (the stop,
    /// and the 0 and 1 that TorchSharp adds).
    /// </summary>
    public static Tensor Range(long start, long stop, Device? device = null)
    {
        using Scalar first = start.ToScalar(), end = stop.ToScalar();
        return torch.arange(first, end, IntOne, dtype: ScalarType.Int64, device: device);
    }
}
