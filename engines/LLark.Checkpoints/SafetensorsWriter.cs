using System.Text.Json;
using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>One tensor to copy into a new safetensors file, under <paramref name="Name"/>, in its stored dtype.</summary>
public sealed record TensorCopyRequest(string Name, ITensorSource Source, string SourceName);

/// <summary>
/// Writes safetensors files that <see cref="SafetensorsFile"/>, Hugging Face and the safetensors library read:
/// tensors in the order given, each in its own dtype, little-endian, C order. Tensors are produced one at a time
/// (a conversion never holds the whole model), and the file appears only when complete: it is written beside the
/// target and renamed over it, so a crash never leaves a torn checkpoint behind.
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>Writes tensors that are already in memory.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        WriteCore(path, [.. tensors.Select(t => new Item(t.Key, StoredDTypes.FromScalarType(t.Value.dtype), t.Value.shape, () => t.Value, Owned: false))],
            metadata ?? new Dictionary<string, string> { ["format"] = "pt" }, default);

    /// <summary>Copies tensors out of other checkpoints, one in memory at a time, in the dtype they are stored in.</summary>
    public static void Write(string path, IReadOnlyList<TensorCopyRequest> tensors, IReadOnlyDictionary<string, string>? metadata = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var items = new List<Item>();
        foreach (TensorCopyRequest request in tensors)
        {
            if (!request.Source.Entries.TryGetValue(request.SourceName, out TensorEntry? entry))
                throw new CheckpointException($"The source checkpoint holds no tensor named '{request.SourceName}'.");
            items.Add(new Item(request.Name, entry.DType, entry.Shape, () =>
            {
                var tensor = torch.empty(entry.Shape, dtype: entry.DType.ToScalarType());
                request.Source.ReadInto(request.SourceName, tensor);
                return tensor;
            }, Owned: true));
        }
        WriteCore(path, items, metadata, ct);
    }

    private sealed record Item(string Name, StoredDType DType, long[] Shape, Func<torch.Tensor> Produce, bool Owned);

    private static void WriteCore(string path, IReadOnlyList<Item> items, IReadOnlyDictionary<string, string>? metadata, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (Item item in items)
        {
            if (header.ContainsKey(item.Name)) throw new ArgumentException($"Tensor '{item.Name}' is listed twice.", nameof(items));
            long bytes = checked(item.Shape.Aggregate(1L, (a, b) => a * b) * item.DType.ElementSize());
            header[item.Name] = new { dtype = SafetensorsName(item.DType), shape = item.Shape, data_offsets = new[] { offset, offset + bytes } };
            offset += bytes;
        }
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        int padded = (json.Length + 7) / 8 * 8;
        string temporary = path + ".partial";
        try
        {
            using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                file.Write(BitConverter.GetBytes((ulong)padded));
                file.Write(json);
                for (int i = json.Length; i < padded; i++) file.WriteByte((byte)' ');
                foreach (Item item in items)
                {
                    ct.ThrowIfCancellationRequested();
                    torch.Tensor produced = item.Produce();
                    try
                    {
                        using torch.Tensor cpu = produced.detach().cpu().contiguous();
                        if (cpu.NumberOfElements > 0) file.Write(cpu.bytes);
                    }
                    finally
                    {
                        if (item.Owned) produced.Dispose();
                    }
                }
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }

    private static string SafetensorsName(StoredDType dtype) => dtype switch
    {
        StoredDType.F32 => "F32",
        StoredDType.F16 => "F16",
        StoredDType.BF16 => "BF16",
        StoredDType.F64 => "F64",
        StoredDType.I64 => "I64",
        StoredDType.I32 => "I32",
        StoredDType.I16 => "I16",
        StoredDType.I8 => "I8",
        StoredDType.U8 => "U8",
        StoredDType.Bool => "BOOL",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };
}
