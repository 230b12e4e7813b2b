using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Language.Engine.Model;

/// <summary>Raw access to CPU tensor memory, which TorchSharp keeps behind element-wise accessors.</summary>
internal static unsafe class NativeTensor
{
    // TorchSharp exposes no data pointer; its native library exports the accessor it uses itself.
    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr handle);

    /// <summary>Address of the first element of a CPU tensor (valid while the tensor lives).</summary>
    public static IntPtr DataPointer(Tensor t)
    {
        if (t.device_type != DeviceType.CPU) throw new ArgumentException("tensor is not on the CPU", nameof(t));
        return THSTensor_data(t.Handle);
    }

    /// <summary>Copies a float32 tensor's elements into <paramref name="destination"/> in one block.</summary>
    public static void CopyTo(Tensor t, Span<float> destination)
    {
        using Tensor source = t.to(ScalarType.Float32, CPU).contiguous();
        if (source.NumberOfElements != destination.Length)
            throw new ArgumentException($"tensor has {source.NumberOfElements} elements, destination {destination.Length}");
        new ReadOnlySpan<float>((void*)DataPointer(source), destination.Length).CopyTo(destination);
    }
}
