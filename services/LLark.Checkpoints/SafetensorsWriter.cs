using System.Text;
using System.Text.Json;
using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>One tensor to copy into a new safetensors file, under <paramref name="Name"/>, in its stored dtype.</summary>
public sealed record TensorCopyRequest(string Name, ITensorSource Source, string SourceName);

/// <summary>
/// Writes safetensors files by copying tensors out of other checkpoints, one tensor in memory at a time and in
/// the dtype they are stored in, so a conversion loses nothing and never holds the whole model.
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>
    /// Writes <paramref name="tensors"/> (in that order) to <paramref name="path"/>. The file appears only when
    /// complete: it is written beside the target and then renamed over it.
    /// </summary>
    public static void Write(string path, IReadOnlyList<TensorCopyRequest> tensors, IReadOnlyDictionary<string, string>? metadata = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 })
            header["__metadata__"] = metadata;
        long offset = 0;
        var entries = new List<(TensorCopyRequest Request, TensorEntry Entry)>();
        foreach (var request in tensors)
        {
            if (!request.Source.Entries.TryGetValue(request.SourceName, out var entry))
                throw new CheckpointException($"The source checkpoint holds no tensor named '{request.SourceName}'.");
            if (header.ContainsKey(request.Name))
                throw new ArgumentException($"Tensor '{request.Name}' is listed twice.", nameof(tensors));
            long bytes = entry.ByteCount();
            header[request.Name] = new { dtype = Name(entry.DType), shape = entry.Shape, data_offsets = new[] { offset, offset + bytes } };
            offset += bytes;
            entries.Add((request, entry));
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
                file.Write(Encoding.ASCII.GetBytes(new string(' ', padded - json.Length)));
                foreach (var (request, entry) in entries)
                {
                    ct.ThrowIfCancellationRequested();
                    using var tensor = torch.empty(entry.Shape, dtype: entry.DType.ToScalarType());
                    request.Source.ReadInto(request.SourceName, tensor);
                    if (entry.ElementCount > 0)
                    {
                        using var flat = tensor.reshape(-1);
                        file.Write(flat.bytes);
                    }
                }
            }
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary))
                File.Delete(temporary);
        }
    }

    private static string Name(StoredDType dtype) => dtype switch
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
