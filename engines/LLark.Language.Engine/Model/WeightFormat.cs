using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Language.Engine.Model;

/// <summary>
/// How the managed CPU kernels hold the model's large matrices (attention and feed-forward projections and the head).
/// Activations, norms, the embedding table and the KV cache stay float32 in every format: only the bytes a decode step
/// streams from memory shrink.
/// </summary>
public enum WeightFormat
{
    /// <summary>The reference: the loaded float32 tensors themselves.</summary>
    Fp32,

    /// <summary>bfloat16, rounded to nearest even from float32: half the bytes, the exponent range of float32.</summary>
    Bf16,

    /// <summary>
    /// Symmetric int8 with one float32 scale per block of <see cref="PackedMatrix.Int8Block"/> weights of a row
    /// (max |w| / 127, as llama.cpp's q8_0): 1.125 bytes a weight. Settings call it int8.
    /// </summary>
    Q8,
}

/// <summary>Parses <see cref="WeightFormat"/> names as options and settings spell them.</summary>
public static class WeightFormats
{
    public static WeightFormat Parse(string name) =>
        TryParse(name) ?? throw new ArgumentException($"unknown weight format '{name}': use fp32, bf16 or int8");

    public static WeightFormat? TryParse(string? name) => name?.Trim().ToLowerInvariant() switch
    {
        "fp32" or "f32" or "float32" => WeightFormat.Fp32,
        "bf16" or "bfloat16" => WeightFormat.Bf16,
        "int8" or "q8" => WeightFormat.Q8,
        _ => null,
    };

    public static string Name(this WeightFormat format) => format switch
    {
        WeightFormat.Bf16 => "bf16",
        WeightFormat.Q8 => "int8",
        _ => "fp32",
    };
}

/// <summary>
/// A weight matrix [rows, cols] in one <see cref="WeightFormat"/>, as the kernels read it: a float32 tensor's own
/// memory, or a packed copy in memory its caller owns (<see cref="ModelMatrices"/>' arena).
/// </summary>
internal sealed unsafe partial class PackedMatrix
{
    /// <summary>Weights per int8 scale, along a row.</summary>
    public const int Int8Block = 32;

    /// <summary>log2 of <see cref="Int8Block"/>: weight j of a row has scale j &gt;&gt; this.</summary>
    internal const int Int8BlockShift = 5;

    private PackedMatrix(WeightFormat format, int rows, int cols, byte* data, float* scales)
    {
        Format = format;
        Rows = rows;
        Cols = cols;
        Data = data;
        Scales = scales;
    }

    public WeightFormat Format { get; }
    public int Rows { get; }
    public int Cols { get; }
    public byte* Data { get; }
    public float* Scales { get; }

    /// <summary>Bytes of weights (and scales) a pass over every row reads.</summary>
    public long Bytes => Format switch
    {
        WeightFormat.Bf16 => 2L * Rows * Cols,
        WeightFormat.Q8 => (long)Rows * Cols + 4L * Rows * BlocksPerRow(Cols),
        _ => 4L * Rows * Cols,
    };

    /// <summary>What the kernels take: a plain value, so the hot loops read no object fields.</summary>
    public WeightRows View => new(Format, Data, Scales, Cols);

    internal static int BlocksPerRow(int cols) => (cols + Int8Block - 1) >> Int8BlockShift;

    /// <summary>The kernels' view of a float32 CPU tensor, which must outlive the view.</summary>
    public static PackedMatrix Borrow(Tensor weight)
    {
        CheckFloat32(weight);
        return new PackedMatrix(WeightFormat.Fp32, (int)weight.shape[0], (int)weight.shape[1], (byte*)NativeTensor.DataPointer(weight), null);
    }

    /// <summary>
    /// Bytes <see cref="Pack(Tensor, WeightFormat, byte*)"/> writes for a [rows, cols] matrix, a multiple of 64 (so
    /// matrices packed one after another stay aligned).
    /// </summary>
    public static long SizeOf(WeightFormat format, int rows, int cols) => format switch
    {
        WeightFormat.Bf16 => Align64(2L * rows * cols),
        WeightFormat.Q8 => Align64((long)rows * cols) + Align64(4L * rows * BlocksPerRow(cols)),
        _ => throw new ArgumentException("fp32 matrices are borrowed, not packed", nameof(format)),
    };

    /// <summary>
    /// <paramref name="weight"/> [rows, cols] (float32, CPU, contiguous) converted to <paramref name="format"/> (bf16 or
    /// int8) into <paramref name="memory"/>: <see cref="SizeOf"/> bytes, 64-byte aligned, owned by the caller.
    /// </summary>
    public static PackedMatrix Pack(Tensor weight, WeightFormat format, byte* memory)
    {
        if (format == WeightFormat.Fp32) throw new ArgumentException("fp32 matrices are borrowed, not packed", nameof(format));
        CheckFloat32(weight);
        int rows = (int)weight.shape[0], cols = (int)weight.shape[1];
        float* source = (float*)NativeTensor.DataPointer(weight);
        int blocks = BlocksPerRow(cols);
        long dataBytes = format == WeightFormat.Bf16 ? 2L * rows * cols : Align64((long)rows * cols);
        float* scales = format == WeightFormat.Q8 ? (float*)(memory + dataBytes) : null;
        Parallel.For(0, rows, r =>
        {
            float* row = source + (long)r * cols;
            if (format == WeightFormat.Bf16) ToBFloat16(row, (ushort*)memory + (long)r * cols, cols);
            else ToInt8(row, (sbyte*)memory + (long)r * cols, scales + (long)r * blocks, cols);
        });
        return new PackedMatrix(format, rows, cols, memory, scales);
    }

    /// <summary>
    /// Memory for packed weights, 64-byte aligned; from 2 MB up, 2 MB aligned and advised onto transparent huge pages
    /// (<see cref="HugePages"/>): a decode step streams every weight, and with 4 KB pages the hardware prefetcher stops at
    /// every page boundary and the TLB misses every 64 cache lines. Free with <see cref="FreeWeights"/>.
    /// </summary>
    internal static byte* AllocateWeights(long bytes)
    {
        if (bytes < HugePages.Size) return (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(64, bytes), 64);
        long size = (bytes + HugePages.Size - 1) / HugePages.Size * HugePages.Size;
        byte* memory = (byte*)NativeMemory.AlignedAlloc((nuint)size, HugePages.Size);
        HugePages.Advise(memory, size);
        return memory;
    }

    internal static void FreeWeights(byte* memory) => NativeMemory.AlignedFree(memory);

    private static void CheckFloat32(Tensor weight)
    {
        if (weight.dtype != ScalarType.Float32 || weight.device_type != DeviceType.CPU || weight.dim() != 2 || !weight.is_contiguous())
            throw new ArgumentException("the managed kernels take contiguous float32 CPU matrices");
    }

    private static long Align64(long n) => (n + 63) & ~63L;

    /// <summary>Round to nearest even; a NaN stays a (quiet) NaN.</summary>
    internal static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    private static void ToBFloat16(float* row, ushort* output, int cols)
    {
        for (int j = 0; j < cols; j++) output[j] = ToBFloat16(row[j]);
    }

    private static void ToInt8(float* row, sbyte* output, float* scales, int cols)
    {
        for (int b = 0, j0 = 0; j0 < cols; b++, j0 += Int8Block)
        {
            int end = Math.Min(cols, j0 + Int8Block);
            float max = 0;
            for (int j = j0; j < end; j++) max = Math.Max(max, Math.Abs(row[j]));
            float scale = max / 127f;
            scales[b] = scale;
            float inverse = scale == 0 ? 0 : 1f / scale;
            for (int j = j0; j < end; j++) output[j] = (sbyte)Math.Clamp((int)MathF.Round(row[j] * inverse), -127, 127);
        }
    }

}

/// <summary>
/// The kernels' handle on a <see cref="PackedMatrix"/>. A weight's float32 value is, in every format, what
/// <see cref="Dequantize"/> writes: bf16 bits shifted into a float's high half, or an int8 times its block's scale (one
/// float32 multiply). <see cref="Dot"/> multiplies exactly those values with the activations, in exactly
/// <see cref="SkinnyMatMul.Dot"/>'s order, so the matrix-vector path (which dequantizes as it goes) and the batched path
/// (which dequantizes a tile of rows into L1 and runs the float32 tiles over it) give the same bits.
/// </summary>
internal readonly unsafe struct WeightRows(WeightFormat format, byte* data, float* scales, int cols)
{
    public readonly WeightFormat Format = format;
    private readonly byte* data = data;
    private readonly float* scales = scales;
    private readonly int cols = cols;

    /// <summary>Bytes of one row's weights.</summary>
    public int RowBytes => Format switch
    {
        WeightFormat.Bf16 => 2 * cols,
        WeightFormat.Q8 => cols,
        _ => 4 * cols,
    };

    /// <summary>Where row <paramref name="r"/>'s weights start.</summary>
    public byte* Row(long r) => data + r * RowBytes;

    /// <summary>The float32 rows [r, r + count): the weights themselves when they are float32, else dequantized into <paramref name="tile"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float* Rows(long r, int count, float* tile)
    {
        if (Format == WeightFormat.Fp32) return (float*)data + r * cols;
        for (int c = 0; c < count; c++) Dequantize(r + c, tile + (long)c * cols);
        return tile;
    }

    /// <summary>Row r's float32 values into <paramref name="output"/> [cols].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Dequantize(long r, float* output)
    {
        int j = 0;
        if (Format == WeightFormat.Bf16)
        {
            ushort* w = (ushort*)data + r * cols;
            if (SkinnyMatMul.Wide)
                for (; j + 16 <= cols; j += 16) BFloat16x16(w + j).Store(output + j);
            for (; j < cols; j++) output[j] = BitConverter.UInt32BitsToSingle((uint)w[j] << 16);
        }
        else if (Format == WeightFormat.Q8)
        {
            sbyte* w = (sbyte*)data + r * cols;
            float* s = scales + r * PackedMatrix.BlocksPerRow(cols);
            if (SkinnyMatMul.Wide)
                for (; j + 16 <= cols; j += 16) (Int8x16(w + j) * Vector512.Create(s[j >> PackedMatrix.Int8BlockShift])).Store(output + j);
            for (; j < cols; j++) output[j] = w[j] * s[j >> PackedMatrix.Int8BlockShift];
        }
        else new Span<float>((float*)data + r * cols, cols).CopyTo(new Span<float>(output, cols));
    }

    /// <summary>Row r · x, as <see cref="SkinnyMatMul.Dot"/> of the dequantized row and x; <paramref name="tile"/> holds a row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Dot(long r, float* x, float* tile)
    {
        if (Format == WeightFormat.Fp32) return SkinnyMatMul.Dot((float*)data + r * cols, x, cols);
        if (!SkinnyMatMul.Wide || cols < 16)
        {
            Dequantize(r, tile);
            return SkinnyMatMul.Dot(tile, x, cols);
        }
        return Format == WeightFormat.Bf16 ? DotBFloat16((ushort*)data + r * cols, x, cols)
            : DotInt8((sbyte*)data + r * cols, scales + r * PackedMatrix.BlocksPerRow(cols), x, cols);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> BFloat16x16(ushort* w) =>
        Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(Vector256.Load(w)), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Int8x16(sbyte* w) =>
        Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(w)));

    // The two fused products below mirror SkinnyMatMul.Dot's 16-lane path step for step (two accumulators over 32-wide
    // chunks, one more 16-wide chunk into the first, the fixed lane sum, a scalar tail), with each weight dequantized as
    // Dequantize writes it.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotBFloat16(ushort* w, float* x, int k)
    {
        Vector512<float> acc0 = Vector512<float>.Zero, acc1 = Vector512<float>.Zero;
        int j = 0;
        for (; j + 32 <= k; j += 32)
        {
            acc0 = Vector512.FusedMultiplyAdd(BFloat16x16(w + j), Vector512.Load(x + j), acc0);
            acc1 = Vector512.FusedMultiplyAdd(BFloat16x16(w + j + 16), Vector512.Load(x + j + 16), acc1);
        }
        for (; j + 16 <= k; j += 16)
            acc0 = Vector512.FusedMultiplyAdd(BFloat16x16(w + j), Vector512.Load(x + j), acc0);
        float sum = SkinnyMatMul.Sum(acc0 + acc1);
        for (; j < k; j++) sum += BitConverter.UInt32BitsToSingle((uint)w[j] << 16) * x[j];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotInt8(sbyte* w, float* s, float* x, int k)
    {
        Vector512<float> acc0 = Vector512<float>.Zero, acc1 = Vector512<float>.Zero;
        int j = 0;
        for (; j + 32 <= k; j += 32)
        {
            var scale = Vector512.Create(s[j >> PackedMatrix.Int8BlockShift]);
            acc0 = Vector512.FusedMultiplyAdd(Int8x16(w + j) * scale, Vector512.Load(x + j), acc0);
            acc1 = Vector512.FusedMultiplyAdd(Int8x16(w + j + 16) * scale, Vector512.Load(x + j + 16), acc1);
        }
        for (; j + 16 <= k; j += 16)
            acc0 = Vector512.FusedMultiplyAdd(Int8x16(w + j) * Vector512.Create(s[j >> PackedMatrix.Int8BlockShift]), Vector512.Load(x + j), acc0);
        float sum = SkinnyMatMul.Sum(acc0 + acc1);
        for (; j < k; j++) sum += w[j] * s[j >> PackedMatrix.Int8BlockShift] * x[j];
        return sum;
    }
}

/// <summary>
/// A model's projections (per layer: fused q/k/v, o, fused gate/up, down) and its head in one <see cref="WeightFormat"/>,
/// filled layer by layer: the loader packs each layer as soon as its tensors are read and frees their float32 copy, so
/// a packed model never holds all its float32 projections at once.
/// </summary>
internal sealed unsafe class ModelMatrices : IDisposable
{
    /// <summary>Matrices per layer, in the order <see cref="SetLayer"/> takes them.</summary>
    public const int PerLayer = 4;

    private readonly PackedMatrix?[] matrices;

    /// <summary>
    /// One allocation for every packed matrix of the model, so that even a small model's matrices lie on huge pages; the
    /// next matrix goes at <see cref="used"/>. Null for float32, whose matrices are the model's tensors.
    /// </summary>
    private byte* arena;
    private long used;
    private readonly long size;

    /// <summary>The model's own float32 matrices, borrowed.</summary>
    public ModelMatrices(int layers)
    {
        Format = WeightFormat.Fp32;
        Layers = layers;
        matrices = new PackedMatrix?[layers * PerLayer + 1];
    }

    /// <summary>Room for every projection and the head of a model of <paramref name="config"/>'s shape, packed as <paramref name="format"/>.</summary>
    public ModelMatrices(LlamaConfig config, WeightFormat format)
    {
        if (format == WeightFormat.Fp32) throw new ArgumentException("fp32 matrices are borrowed", nameof(format));
        Format = format;
        Layers = config.NumHiddenLayers;
        matrices = new PackedMatrix?[Layers * PerLayer + 1];
        int dim = config.HiddenSize, qkv = (config.NumAttentionHeads + 2 * config.KeyValueHeads) * config.HeadDim, ffn = config.IntermediateSize;
        long layer = PackedMatrix.SizeOf(format, qkv, dim) + PackedMatrix.SizeOf(format, dim, config.NumAttentionHeads * config.HeadDim)
            + PackedMatrix.SizeOf(format, 2 * ffn, dim) + PackedMatrix.SizeOf(format, dim, ffn);
        size = Layers * layer + PackedMatrix.SizeOf(format, config.VocabSize, dim);
        arena = PackedMatrix.AllocateWeights(size);
    }

    public WeightFormat Format { get; }

    public int Layers { get; }

    public bool HasLayer(int layer) => matrices[layer * PerLayer] is not null;

    public bool HasHead => matrices[^1] is not null;

    public bool Complete => matrices.All(m => m is not null);

    /// <summary>Bytes a pass over every matrix reads: what one decode step streams.</summary>
    public long Bytes => matrices.Sum(m => m?.Bytes ?? 0);

    public PackedMatrix Layer(int layer, int which) => matrices[layer * PerLayer + which] ?? throw new InvalidOperationException($"layer {layer} is not packed");

    public PackedMatrix Head => matrices[^1] ?? throw new InvalidOperationException("the head is not packed");

    public void SetLayer(int layer, Tensor qkv, Tensor o, Tensor gateUp, Tensor down)
    {
        if (HasLayer(layer)) throw new InvalidOperationException($"layer {layer} is already packed");
        Tensor[] tensors = [qkv, o, gateUp, down];
        for (int i = 0; i < PerLayer; i++) matrices[layer * PerLayer + i] = Pack(tensors[i]);
    }

    private PackedMatrix Pack(Tensor weight)
    {
        if (arena is null) return PackedMatrix.Borrow(weight);
        long bytes = PackedMatrix.SizeOf(Format, (int)weight.shape[0], (int)weight.shape[1]);
        if (used + bytes > size) throw new InvalidOperationException("a matrix does not match the model's shape");
        PackedMatrix packed = PackedMatrix.Pack(weight, Format, arena + used);
        used += bytes;
        return packed;
    }

    public void SetHead(Tensor head)
    {
        if (HasHead) throw new InvalidOperationException("the head is already packed");
        matrices[^1] = Pack(head);
    }

    public void Dispose()
    {
        if (arena is null) return;
        PackedMatrix.FreeWeights(arena);
        arena = null;
    }
}
