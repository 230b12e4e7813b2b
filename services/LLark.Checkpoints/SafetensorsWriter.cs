using System.Text.Json;
using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>
/// Writes named tensors as one safetensors file that <see cref="SafetensorsFile"/>, Hugging Face and the
/// safetensors library read: tensors in the order given, each stored in its own dtype, little-endian, C order.
/// The file is written to a temporary name and renamed, so a crash never leaves a torn checkpoint behind.
/// </summary>
public static class SafetensorsWriter
{
    public static void Save(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var list = tensors.ToList();
        var header = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["__metadata__"] = metadata ?? new Dictionary<string, string> { ["format"] = "pt" },
        };
        long offset = 0;
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach ((string name, torch.Tensor t) in list)
        {
            if (!names.Add(name)) throw new ArgumentException($"tensor '{name}' is given twice", nameof(tensors));
            long bytes = t.NumberOfElements * t.ElementSize;
            header[name] = new Dictionary<string, object>
            {
                ["dtype"] = SafetensorsName(t.dtype),
                ["shape"] = t.shape,
                ["data_offsets"] = new[] { offset, offset + bytes },
            };
            offset += bytes;
        }
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        int padded = (json.Length + 7) / 8 * 8;

        string temporary = path + ".tmp-" + Environment.ProcessId;
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            stream.Write(BitConverter.GetBytes((ulong)padded));
            stream.Write(json);
            for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
            foreach ((_, torch.Tensor t) in list)
            {
                using torch.Tensor cpu = t.detach().cpu().contiguous();
                stream.Write(cpu.bytes);
            }
            stream.Flush(flushToDisk: true);
        }
        File.Move(temporary, path, overwrite: true);
    }

    private static string SafetensorsName(torch.ScalarType dtype) => dtype switch
    {
        torch.ScalarType.Float32 => "F32",
        torch.ScalarType.Float16 => "F16",
        torch.ScalarType.BFloat16 => "BF16",
        torch.ScalarType.Float64 => "F64",
        torch.ScalarType.Int64 => "I64",
        torch.ScalarType.Int32 => "I32",
        torch.ScalarType.Int16 => "I16",
        torch.ScalarType.Int8 => "I8",
        torch.ScalarType.Byte => "U8",
        torch.ScalarType.Bool => "BOOL",
        _ => throw new ArgumentException($"dtype {dtype} has no safetensors name"),
    };
}
