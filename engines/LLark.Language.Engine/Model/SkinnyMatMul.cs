using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Language.Engine.Model;

/// <summary>
/// y = x · Wᵀ for a few rows of x (decode steps) in float32 on the CPU, with SIMD dot products over the
/// weight rows split between cores. Inference only: autograd cannot see through it, so tensors that need
/// gradients always take libtorch's product.
/// </summary>
/// <remarks>
/// libtorch's CPU path for a [1, k] × [k, n] product runs well below memory speed, and decode is
/// nothing but such products. Larger batches (prefill) stay with libtorch's GEMM. Each output is one dot
/// product accumulated in float32 lanes, so results differ from libtorch's only in summation order.
/// </remarks>
internal static unsafe class SkinnyMatMul
{
    /// <summary>Rows of x up to which this kernel beats GEMM (each weight row is read once for all of them).</summary>
    public const int MaxRows = 4;

    /// <summary>
    /// Below this many weight elements libtorch's own product is as fast (the weights sit in cache and waking a
    /// second core costs more than it saves).
    /// </summary>
    private const long MinWeightElements = 1 << 14;

    public static bool Applies(Tensor x, Tensor weight) =>
        !(x.requires_grad || weight.requires_grad) &&
        x.dtype == ScalarType.Float32 && weight.dtype == ScalarType.Float32 &&
        x.device_type == DeviceType.CPU && weight.device_type == DeviceType.CPU &&
        weight.is_contiguous() && weight.NumberOfElements >= MinWeightElements &&
        x.NumberOfElements / weight.shape[1] <= MaxRows;

    public static Tensor Forward(Tensor x, Tensor weight)
    {
        int k = (int)weight.shape[1], n = (int)weight.shape[0];
        using Tensor input = x.contiguous();
        int m = (int)(input.NumberOfElements / k);
        long[] shape = [.. x.shape[..^1], n];
        Tensor y = empty(shape, dtype: ScalarType.Float32);
        float* xp = (float*)NativeTensor.DataPointer(input);
        float* wp = (float*)NativeTensor.DataPointer(weight);
        float* yp = (float*)NativeTensor.DataPointer(y);
        SpinWorkers.Shared.Run((part, parts) =>
        {
            int chunk = (n + parts - 1) / parts;
            int start = part * chunk, end = Math.Min(n, start + chunk);
            if (start < end) Rows(xp, wp, yp, m, n, k, start, end);
        });
        return y;
    }

    private static void Rows(float* x, float* w, float* y, int m, int n, int k, int start, int end)
    {
        for (int r = start; r < end; r++)
        {
            float* row = w + (long)r * k;
            for (int i = 0; i < m; i++)
                y[(long)i * n + r] = Dot(row, x + (long)i * k, k);
        }
    }

    /// <summary>Whether the 16-lane paths run (AVX-512 on x64); elsewhere the products take 8-lane vectors.</summary>
    internal static bool Wide => Vector512.IsHardwareAccelerated && Avx512F.IsSupported;

    /// <summary>
    /// The lane sum every 16-lane dot product here ends with, in one fixed order: adjacent lanes in pairs, the two pairs
    /// of each 128-bit quarter, quarters 0 + 1 and 2 + 3, then those two. The batched products reduce many vectors at
    /// once in this same order (<see cref="DecodeStep"/>'s transposed sum), which is what keeps their results bit for
    /// bit those of <see cref="Dot"/>; the order is spelled out here rather than left to <c>Vector512.Sum</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Sum(Vector512<float> v)
    {
        v += Avx512F.Permute4x32(v, 0b10_11_00_01);
        v += Avx512F.Permute4x32(v, 0b01_00_11_10);
        v += Avx512F.Shuffle4x128(v, v, 0b10_11_00_01);
        v += Avx512F.Shuffle4x128(v, v, 0b01_00_11_10);
        return v.ToScalar();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot(float* a, float* b, int k)
    {
        int j = 0;
        float sum = 0;
        if (Wide && k >= 16)
        {
            Vector512<float> acc0 = Vector512<float>.Zero, acc1 = Vector512<float>.Zero;
            for (; j + 32 <= k; j += 32)
            {
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + j), Vector512.Load(b + j), acc0);
                acc1 = Vector512.FusedMultiplyAdd(Vector512.Load(a + j + 16), Vector512.Load(b + j + 16), acc1);
            }
            for (; j + 16 <= k; j += 16)
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + j), Vector512.Load(b + j), acc0);
            sum = Sum(acc0 + acc1);
        }
        else if (Vector256.IsHardwareAccelerated && k >= 8)
        {
            Vector256<float> acc0 = Vector256<float>.Zero, acc1 = Vector256<float>.Zero;
            for (; j + 16 <= k; j += 16)
            {
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + j), Vector256.Load(b + j), acc0);
                acc1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + j + 8), Vector256.Load(b + j + 8), acc1);
            }
            for (; j + 8 <= k; j += 8)
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + j), Vector256.Load(b + j), acc0);
            sum = Vector256.Sum(acc0 + acc1);
        }
        for (; j < k; j++) sum += a[j] * b[j];
        return sum;
    }
}
