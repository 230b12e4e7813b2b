using System.Numerics;
using Microsoft.Win32.SafeHandles;
using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>
/// A <c>torch.save</c> file in the format torch wrote before 1.6 (the released Jukebox <c>*.pth.tar</c> files).
/// It is a run of pickles: torch's magic number, the protocol version 1001, a sys_info dict, the object itself
/// (storages as persistent ids), the list of storage keys; then, in that key order, each storage as an int64
/// element count followed by its raw little-endian bytes. The pickles are read once; tensor data is read on
/// demand from the recorded offsets.
/// </summary>
public sealed class LegacyTorchPickleFile : ITensorSource
{
    private const long ProtocolVersion = 1001;

    // The object pickle of a 5B model is a few hundred kB; a longer one means a file that is not a checkpoint.
    private const long MaxPicklesBytes = 256L << 20;

    private static readonly BigInteger Magic = BigInteger.Parse("119547037146038801333356", System.Globalization.CultureInfo.InvariantCulture);

    private readonly SafeFileHandle handle;
    private readonly Dictionary<string, (TensorEntry Entry, TensorRef Tensor)> tensors = [];
    private readonly Dictionary<string, long> storageOffsets = [];

    /// <param name="path">The file.</param>
    /// <param name="stateDictKey">Key of the top-level dict that holds the state dict (Jukebox: "model"); null when the file is the state dict.</param>
    /// <param name="stripModulePrefix">Drop a leading "module." (left by DataParallel) from every tensor name.</param>
    public LegacyTorchPickleFile(string path, string? stateDictKey = null, bool stripModulePrefix = false)
    {
        Path = path;
        handle = CheckpointFiles.OpenRead(path);
        try
        {
            var host = new TorchPickleHost(path);
            object? root;
            List<string> keys;
            long dataStart;
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16))
            {
                CheckHeader(path, stream, host);
                root = new PickleReader(stream, path, host).Load();
                keys = ReadKeys(path, stream, host);
                dataStart = stream.Position;
                if (dataStart > MaxPicklesBytes)
                    throw new CheckpointException($"{path}: its pickles take {dataStart} bytes, far more than a state dict's.");
            }
            ComputeOffsets(path, host, keys, dataStart);
            var (named, metadata) = TorchStateDict.Split(root, path, stateDictKey, stripModulePrefix);
            Metadata = metadata;
            var entries = new Dictionary<string, TensorEntry>();
            foreach (var (name, tensor) in named)
            {
                if (!storageOffsets.ContainsKey(tensor.Storage.Key))
                    throw new CheckpointException($"{path}: tensor '{name}' uses storage '{tensor.Storage.Key}', which the storage list omits.");
                CheckExtent(path, name, tensor);
                var entry = new TensorEntry(name, tensor.Storage.DType, tensor.Shape, path);
                tensors[name] = (entry, tensor);
                entries[name] = entry;
            }
            Entries = entries;
        }
        catch (Exception e) when (e is not CheckpointException)
        {
            handle.Dispose();
            throw new CheckpointException($"{path} cannot be read as a legacy torch.save file: {e.Message}", e);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public string Path { get; }

    public IReadOnlyDictionary<string, TensorEntry> Entries { get; }

    /// <summary>Top-level values other than the state dict (Jukebox: <c>hps</c>, <c>step</c>), as <see cref="TorchPickleFile.Metadata"/> describes them.</summary>
    public IReadOnlyDictionary<string, object?> Metadata { get; }

    public void ReadInto(string name, torch.Tensor destination)
    {
        ObjectDisposedException.ThrowIf(handle.IsClosed, this);
        if (!tensors.TryGetValue(name, out var found))
            throw new CheckpointException($"{Path} holds no tensor named '{name}'.");
        var (entry, tensor) = found;
        TensorCopy.CheckDestination(entry, destination);
        long position = storageOffsets[tensor.Storage.Key] + tensor.Offset * entry.DType.ElementSize();
        SpanReader read = buffer =>
        {
            CheckpointFiles.ReadExactly(handle, buffer, position, Path, name);
            position += buffer.Length;
        };
        if (TensorLayout.IsContiguous(tensor.Shape, tensor.Stride))
            TensorCopy.ReadContiguous(entry, destination, read);
        else
            TensorCopy.ReadStrided(entry, tensor.Stride, TensorLayout.Extent(tensor), destination, read);
    }

    public void Dispose() => handle.Dispose();

    private static void CheckHeader(string path, FileStream stream, TorchPickleHost host)
    {
        if (new PickleReader(stream, path, host).Load() is not BigInteger magic || magic != Magic)
            throw new CheckpointException($"{path} does not start with torch's magic number: it is not a legacy torch.save file.");
        if (new PickleReader(stream, path, host).Load() is not long protocol || protocol != ProtocolVersion)
            throw new CheckpointException($"{path} uses a torch.save protocol other than {ProtocolVersion}.");
        if (new PickleReader(stream, path, host).Load() is OrderedDictionary<object, object?> sysInfo
            && sysInfo.TryGetValue("little_endian", out var little) && little is false)
            throw new CheckpointException($"{path} was written on a big-endian machine, which this reader does not handle.");
    }

    private static List<string> ReadKeys(string path, FileStream stream, TorchPickleHost host)
    {
        if (new PickleReader(stream, path, host).Load() is not List<object?> list || list.Any(k => k is not string))
            throw new CheckpointException($"{path}: the storage key list after the object is missing or malformed.");
        return list.Cast<string>().ToList();
    }

    /// <summary>Walks the storages in key order: each is a count, which must agree with its persistent id, then data.</summary>
    private void ComputeOffsets(string path, TorchPickleHost host, List<string> keys, long dataStart)
    {
        long length = RandomAccess.GetLength(handle);
        long position = dataStart;
        Span<byte> count = stackalloc byte[8];
        foreach (string key in keys)
        {
            if (!host.Storages.TryGetValue(key, out var storage))
                throw new CheckpointException($"{path}: the storage list names '{key}', which no tensor uses.");
            CheckpointFiles.ReadExactly(handle, count, position, path, null);
            long elements = BitConverter.ToInt64(count);
            if (elements != storage.ElementCount)
                throw new CheckpointException($"{path}: storage '{key}' is declared with {storage.ElementCount} elements but stored with {elements}.");
            position += 8;
            storageOffsets[key] = position;
            position += elements * storage.DType.ElementSize();
            if (position > length)
                throw new CheckpointException($"{path} is truncated: storage '{key}' ends at byte {position}, past the end of the file ({length}).");
        }
    }

    private static void CheckExtent(string path, string name, TensorRef tensor)
    {
        if (tensor.Shape.Any(s => s == 0))
            return;
        if (tensor.Offset + TensorLayout.Extent(tensor) > tensor.Storage.ElementCount)
            throw new CheckpointException(
                $"{path}: tensor '{name}' (offset {tensor.Offset}, shape {TensorCopy.FormatShape(tensor.Shape)}) reaches past the end of its storage of {tensor.Storage.ElementCount} elements.");
    }
}

/// <summary>Row-major facts about pickled tensor views, shared by the torch.save readers.</summary>
internal static class TensorLayout
{
    /// <summary>Elements from the first to the last one the view touches, inclusive.</summary>
    public static long Extent(TensorRef tensor) =>
        checked(1 + tensor.Shape.Zip(tensor.Stride, (size, stride) => checked((size - 1) * stride)).Sum());

    /// <summary>Row-major contiguity; a dimension of size 1 may carry any stride, as in torch.</summary>
    public static bool IsContiguous(long[] shape, long[] stride)
    {
        long expected = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] != 1 && stride[i] != expected)
                return false;
            expected *= shape[i];
        }
        return true;
    }
}
