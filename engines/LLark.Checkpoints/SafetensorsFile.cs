using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>
/// One safetensors file: an 8-byte little-endian header length, a JSON header, then the raw little-endian data.
/// The header is checked in full on open, so a corrupt file fails there, naming the file and tensor, and never
/// half-way through loading a model.
/// </summary>
public sealed class SafetensorsFile : ITensorSource
{
    // The safetensors library refuses headers over 100 MB; a larger length means a corrupt or foreign file.
    private const long MaxHeaderBytes = 100_000_000;

    private readonly SafeFileHandle handle;
    private readonly Dictionary<string, TensorEntry> entries;
    private readonly Dictionary<string, long> fileOffsets;

    public SafetensorsFile(string path)
    {
        Path = path;
        handle = CheckpointFiles.OpenRead(path);
        try
        {
            (entries, fileOffsets, Metadata) = ReadHeader(path, handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public string Path { get; }

    public IReadOnlyDictionary<string, TensorEntry> Entries => entries;

    /// <summary>The string entries of the header's <c>__metadata__</c> object (e.g. <c>format: pt</c>).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public void ReadInto(string name, torch.Tensor destination)
    {
        ObjectDisposedException.ThrowIf(handle.IsClosed, this);
        if (!entries.TryGetValue(name, out var entry))
            throw new CheckpointException($"{Path} holds no tensor named '{name}'.");
        TensorCopy.CheckDestination(entry, destination);
        long position = fileOffsets[name];
        TensorCopy.ReadContiguous(entry, destination, buffer =>
        {
            CheckpointFiles.ReadExactly(handle, buffer, position, Path, name);
            position += buffer.Length;
        });
    }

    public void Dispose() => handle.Dispose();

    private static (Dictionary<string, TensorEntry>, Dictionary<string, long>, Dictionary<string, string>) ReadHeader(
        string path, SafeFileHandle handle)
    {
        long fileLength = RandomAccess.GetLength(handle);
        if (fileLength < 8)
            throw new CheckpointException($"{path} is truncated: {fileLength} bytes, shorter than the 8-byte safetensors header length.");
        Span<byte> lengthBytes = stackalloc byte[8];
        CheckpointFiles.ReadExactly(handle, lengthBytes, 0, path, null);
        ulong headerLength = BitConverter.ToUInt64(lengthBytes);
        if (headerLength > (ulong)(fileLength - 8) || headerLength > MaxHeaderBytes)
            throw new CheckpointException(
                $"{path} is not a valid safetensors file: its header length ({headerLength} bytes) exceeds the file's remaining {fileLength - 8} bytes.");
        var header = new byte[headerLength];
        CheckpointFiles.ReadExactly(handle, header, 8, path, null);
        long dataStart = 8 + (long)headerLength;
        var (entries, dataOffsets, metadata) = ParseHeader(path, header, fileLength - dataStart);
        var fileOffsets = dataOffsets.ToDictionary(p => p.Key, p => dataStart + p.Value);
        return (entries, fileOffsets, metadata);
    }

    /// <summary>Parses and checks a header against a data section of <paramref name="dataLength"/> bytes.</summary>
    internal static (Dictionary<string, TensorEntry>, Dictionary<string, long>, Dictionary<string, string>) ParseHeader(
        string path, byte[] header, long dataLength)
    {
        // JsonDocument accepts invalid UTF-8 inside strings and fails only when a name is read, with an
        // InvalidOperationException; the specification requires UTF-8.
        if (!System.Text.Unicode.Utf8.IsValid(header))
            throw new CheckpointException($"{path} has a safetensors header that is not valid UTF-8.");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path} has a safetensors header that is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{path} has a safetensors header that is not a JSON object.");
            var metadata = new Dictionary<string, string>();
            var spans = new List<(TensorEntry Entry, long Begin, long End)>();
            var seen = new HashSet<string>();
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                    throw new CheckpointException($"{path} lists tensor '{property.Name}' twice in its header.");
                if (property.Name == "__metadata__")
                    ReadMetadata(property.Value, metadata);
                else
                    spans.Add(ParseEntry(path, property.Name, property.Value, dataLength));
            }
            // File order, so that loading walks the file forwards; the header itself may be in any order. Ties on
            // Begin are broken by End, as the safetensors library does, so an empty tensor at the start of another
            // comes first and is not taken for an overlap.
            spans.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
            for (int i = 1; i < spans.Count; i++)
            {
                if (spans[i].Begin < spans[i - 1].End)
                    throw new CheckpointException(
                        $"{path}: the data of tensor '{spans[i].Entry.Name}' overlaps that of '{spans[i - 1].Entry.Name}'.");
            }
            return (spans.ToDictionary(s => s.Entry.Name, s => s.Entry), spans.ToDictionary(s => s.Entry.Name, s => s.Begin), metadata);
        }
    }

    private static void ReadMetadata(JsonElement element, Dictionary<string, string> metadata)
    {
        // Metadata is informational; values that are not strings break no tensor, so they are skipped, not fatal.
        if (element.ValueKind != JsonValueKind.Object)
            return;
        foreach (var item in element.EnumerateObject())
        {
            if (item.Value.ValueKind == JsonValueKind.String)
                metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static (TensorEntry, long, long) ParseEntry(string path, string name, JsonElement element, long dataLength)
    {
        string where = $"{path}: tensor '{name}'";
        if (element.ValueKind != JsonValueKind.Object)
            throw new CheckpointException($"{where} is not described by a JSON object.");
        if (!element.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new CheckpointException($"{where} has no dtype.");
        string dtypeName = dtypeElement.GetString()!;
        var dtype = StoredDTypes.FromSafetensors(dtypeName)
            ?? throw new CheckpointException($"{where} has dtype '{dtypeName}', which this reader does not support.");
        long[] shape = ReadIntegers(element, "shape", where, expectedCount: null);
        long[] offsets = ReadIntegers(element, "data_offsets", where, expectedCount: 2);
        var entry = new TensorEntry(name, dtype, shape, path);
        long begin = offsets[0], end = offsets[1];
        if (begin > end || end > dataLength)
            throw new CheckpointException(
                $"{where} has data_offsets [{begin}, {end}] outside the data section of {dataLength} bytes (truncated or corrupt file).");
        long? count = StoredDTypes.CheckedElementCount(shape);
        if (count is null || count > long.MaxValue / dtype.ElementSize())
            throw new CheckpointException($"{where} has shape {TensorCopy.FormatShape(shape)}, too large to address.");
        long expected = count.Value * dtype.ElementSize();
        if (end - begin != expected)
            throw new CheckpointException(
                $"{where} spans {end - begin} bytes, but shape {TensorCopy.FormatShape(shape)} of {dtypeName} needs {expected}.");
        return (entry, begin, end);
    }

    private static long[] ReadIntegers(JsonElement element, string property, string where, int? expectedCount)
    {
        if (!element.TryGetProperty(property, out var array) || array.ValueKind != JsonValueKind.Array)
            throw new CheckpointException($"{where} has no {property} array.");
        var values = new long[array.GetArrayLength()];
        if (expectedCount is int count && values.Length != count)
            throw new CheckpointException($"{where} has {values.Length} {property} values instead of {count}.");
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long value) || value < 0)
                throw new CheckpointException($"{where} has a {property} value that is not a non-negative integer: {item.GetRawText()}.");
            values[i++] = value;
        }
        return values;
    }
}
