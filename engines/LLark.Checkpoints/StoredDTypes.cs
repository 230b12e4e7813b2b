using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>Sizes and torch equivalents of <see cref="StoredDType"/>, and the names each file format uses for them.</summary>
public static class StoredDTypes
{
    public static int ElementSize(this StoredDType dtype) => dtype switch
    {
        StoredDType.F64 or StoredDType.I64 => 8,
        StoredDType.F32 or StoredDType.I32 => 4,
        StoredDType.F16 or StoredDType.BF16 or StoredDType.I16 => 2,
        StoredDType.I8 or StoredDType.U8 or StoredDType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    public static torch.ScalarType ToScalarType(this StoredDType dtype) => dtype switch
    {
        StoredDType.F32 => torch.ScalarType.Float32,
        StoredDType.F16 => torch.ScalarType.Float16,
        StoredDType.BF16 => torch.ScalarType.BFloat16,
        StoredDType.F64 => torch.ScalarType.Float64,
        StoredDType.I64 => torch.ScalarType.Int64,
        StoredDType.I32 => torch.ScalarType.Int32,
        StoredDType.I16 => torch.ScalarType.Int16,
        StoredDType.I8 => torch.ScalarType.Int8,
        StoredDType.U8 => torch.ScalarType.Byte,
        StoredDType.Bool => torch.ScalarType.Bool,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>The stored dtype of a torch dtype (for writing checkpoints).</summary>
    public static StoredDType FromScalarType(torch.ScalarType dtype) => dtype switch
    {
        torch.ScalarType.Float32 => StoredDType.F32,
        torch.ScalarType.Float16 => StoredDType.F16,
        torch.ScalarType.BFloat16 => StoredDType.BF16,
        torch.ScalarType.Float64 => StoredDType.F64,
        torch.ScalarType.Int64 => StoredDType.I64,
        torch.ScalarType.Int32 => StoredDType.I32,
        torch.ScalarType.Int16 => StoredDType.I16,
        torch.ScalarType.Int8 => StoredDType.I8,
        torch.ScalarType.Byte => StoredDType.U8,
        torch.ScalarType.Bool => StoredDType.Bool,
        _ => throw new ArgumentException($"dtype {dtype} cannot be stored in a checkpoint", nameof(dtype)),
    };

    /// <summary>Bytes a tensor of this entry occupies on disk.</summary>
    public static long ByteCount(this TensorEntry entry) => checked(entry.ElementCount * entry.DType.ElementSize());

    /// <summary>Product of a shape's dimensions, or null when a dimension is negative or the product overflows.</summary>
    internal static long? CheckedElementCount(IEnumerable<long> shape)
    {
        long count = 1;
        foreach (long size in shape)
        {
            if (size < 0 || (size > 0 && count > long.MaxValue / size))
                return null;
            count *= size;
        }
        return count;
    }

    /// <summary>The safetensors header spelling ("F32", "BF16", "BOOL", ...); null for a dtype this reader does not handle.</summary>
    internal static StoredDType? FromSafetensors(string name) => name switch
    {
        "F32" => StoredDType.F32,
        "F16" => StoredDType.F16,
        "BF16" => StoredDType.BF16,
        "F64" => StoredDType.F64,
        "I64" => StoredDType.I64,
        "I32" => StoredDType.I32,
        "I16" => StoredDType.I16,
        "I8" => StoredDType.I8,
        "U8" => StoredDType.U8,
        "BOOL" => StoredDType.Bool,
        _ => null,
    };

    /// <summary>
    /// The legacy typed-storage class that torch.save names in each persistent id ("FloatStorage", ...). torch
    /// still writes these names for compatibility, so they identify the element type of every storage.
    /// </summary>
    internal static StoredDType? FromTorchStorageClass(string className) => className switch
    {
        "FloatStorage" => StoredDType.F32,
        "HalfStorage" => StoredDType.F16,
        "BFloat16Storage" => StoredDType.BF16,
        "DoubleStorage" => StoredDType.F64,
        "LongStorage" => StoredDType.I64,
        "IntStorage" => StoredDType.I32,
        "ShortStorage" => StoredDType.I16,
        "CharStorage" => StoredDType.I8,
        "ByteStorage" => StoredDType.U8,
        "BoolStorage" => StoredDType.Bool,
        _ => null,
    };
}
