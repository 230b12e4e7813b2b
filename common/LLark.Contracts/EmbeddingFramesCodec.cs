using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Google.Protobuf;

namespace LLark.Common.V1;

/// <summary>The wire layout of <see cref="EmbeddingFrames"/>: frames x width values, row-major, little-endian float32 or bfloat16.</summary>
public static class EmbeddingFramesCodec
{
    /// <summary>Bytes one value takes in <paramref name="dtype"/>.</summary>
    public static int ValueSize(FrameDType dtype) => dtype switch
    {
        FrameDType.Unspecified or FrameDType.Float32 => 4,
        FrameDType.Bfloat16 => 2,
        _ => throw new FormatException($"unknown frame dtype {(int)dtype}"),
    };

    public static EmbeddingFrames Encode(ReadOnlySpan<float> values, int width, double fps, FrameDType dtype, string? encoderModelId = null)
    {
        if (width <= 0 || values.Length % width != 0) throw new ArgumentException($"{values.Length} values do not make whole frames of width {width}");
        byte[] data = new byte[values.Length * ValueSize(dtype)];
        if (dtype == FrameDType.Bfloat16)
        {
            for (int i = 0; i < values.Length; i++)
                BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(2 * i), ToBFloat16(values[i]));
        }
        else if (BitConverter.IsLittleEndian) MemoryMarshal.AsBytes(values).CopyTo(data);
        else for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4 * i), values[i]);
        return new EmbeddingFrames
        {
            Dtype = dtype == FrameDType.Unspecified ? FrameDType.Float32 : dtype,
            Frames = (uint)(values.Length / width),
            Width = (uint)width,
            Fps = fps,
            Data = UnsafeByteOperations.UnsafeWrap(data),
            EncoderModelId = encoderModelId ?? "",
        };
    }

    /// <summary>The values as float32; throws <see cref="FormatException"/> naming what is inconsistent.</summary>
    public static float[] Decode(EmbeddingFrames frames)
    {
        ArgumentNullException.ThrowIfNull(frames);
        if (frames.Width == 0) throw new FormatException("width must be > 0");
        if (frames.Frames == 0) throw new FormatException("frames must be > 0");
        int size = ValueSize(frames.Dtype);
        long count = (long)frames.Frames * frames.Width;
        if (count > int.MaxValue / 4 || frames.Data.Length != count * size)
            throw new FormatException($"data holds {frames.Data.Length} bytes, but {frames.Frames} frames x {frames.Width} values x {size} bytes = {count * size}");
        var values = new float[count];
        ReadOnlySpan<byte> data = frames.Data.Span;
        if (size == 2)
        {
            for (int i = 0; i < values.Length; i++)
                values[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(data[(2 * i)..]) << 16);
        }
        else if (BitConverter.IsLittleEndian) data.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
        else for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(data[(4 * i)..]);
        return values;
    }

    /// <summary>Round to nearest even, as torch's float32 -> bfloat16 does; NaN stays NaN.</summary>
    public static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}
