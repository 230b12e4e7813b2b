using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>Fills <paramref name="buffer"/> completely with the next bytes of a tensor's data, or throws.</summary>
internal delegate void SpanReader(Span<byte> buffer);

/// <summary>
/// Moves a tensor's bytes from a file into a destination tensor, for every reader. Bytes go straight into the
/// destination's memory when the dtypes agree; otherwise through a small staging tensor of the stored dtype, so
/// that torch's own conversion (exact for F16 subnormals and BF16) is the one used.
/// </summary>
internal static class TensorCopy
{
    /// <summary>Largest block read at once: bounds the staging tensor, and keeps each span well under 2 GiB.</summary>
    internal const int ChunkBytes = 16 << 20;

    public static void CheckDestination(TensorEntry entry, torch.Tensor destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (destination.device_type != DeviceType.CPU)
            throw new CheckpointException($"Cannot read tensor '{entry.Name}' into a tensor on {destination.device}: the destination must be on the CPU.");
        if (!destination.shape.SequenceEqual(entry.Shape))
            throw new CheckpointException(
                $"Tensor '{entry.Name}' in {entry.File} has shape {FormatShape(entry.Shape)}, but the destination has shape {FormatShape(destination.shape)}.");
        if (!destination.is_contiguous())
            throw new CheckpointException($"Cannot read tensor '{entry.Name}' into a non-contiguous destination.");
    }

    /// <summary>Reads the entry's elements, stored densely in row-major order, into the checked destination.</summary>
    public static void ReadContiguous(TensorEntry entry, torch.Tensor destination, SpanReader read)
    {
        if (entry.ElementCount == 0)
            return;
        using var noGrad = torch.no_grad();
        // A contiguous tensor's reshape(-1) is a view of the same memory, 0-d tensors included.
        using var flat = destination.reshape(-1);
        Fill(flat, entry.DType, read);
    }

    /// <summary>
    /// Reads a storage span of <paramref name="extent"/> elements, then lets torch gather the strided view out of
    /// it. Only non-contiguous pickled tensors (saved views) take this path, and they are small in practice.
    /// </summary>
    public static void ReadStrided(TensorEntry entry, long[] stride, long extent, torch.Tensor destination, SpanReader read)
    {
        if (entry.ElementCount == 0)
            return;
        using var noGrad = torch.no_grad();
        using var staging = torch.empty(extent, dtype: entry.DType.ToScalarType());
        FillSameType(staging, entry.DType.ElementSize(), read);
        using var view = staging.as_strided(entry.Shape, stride, 0);
        destination.copy_(view);
    }

    /// <summary>Fills the 1-D tensor <paramref name="flat"/> from data of dtype <paramref name="stored"/>.</summary>
    private static void Fill(torch.Tensor flat, StoredDType stored, SpanReader read)
    {
        int elementSize = stored.ElementSize();
        if (flat.dtype == stored.ToScalarType())
        {
            FillSameType(flat, elementSize, read);
            return;
        }
        long count = flat.shape[0];
        long chunk = Math.Min(count, ChunkBytes / elementSize);
        using var staging = torch.empty(chunk, dtype: stored.ToScalarType());
        for (long start = 0; start < count; start += chunk)
        {
            long length = Math.Min(chunk, count - start);
            using var stage = staging.narrow(0, 0, length);
            read(stage.bytes);
            using var target = flat.narrow(0, start, length);
            target.copy_(stage);
        }
    }

    private static void FillSameType(torch.Tensor flat, int elementSize, SpanReader read)
    {
        long count = flat.shape[0];
        long chunk = ChunkBytes / elementSize;
        for (long start = 0; start < count; start += chunk)
        {
            using var target = flat.narrow(0, start, Math.Min(chunk, count - start));
            read(target.bytes);
        }
    }

    public static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";
}
