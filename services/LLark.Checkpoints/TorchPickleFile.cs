using System.Buffers;
using System.IO.Compression;
using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>
/// A <c>torch.save</c> file in the zip format of torch ≥ 1.6 (Hugging Face <c>pytorch_model*.bin</c>, Jukebox
/// <c>*.pth</c> re-saved). <c>&lt;archive&gt;/data.pkl</c> is unpickled with an allow-list that only builds
/// tensors; each storage is the zip entry <c>&lt;archive&gt;/data/&lt;key&gt;</c>, read on demand.
/// </summary>
public sealed class TorchPickleFile : ITensorSource
{
    // data.pkl holds names and shapes only; even a 70B model's is a few MB. Larger means a corrupt length.
    private const long MaxPickleBytes = 256L << 20;

    private readonly FileStream file;
    private readonly ZipArchive zip;
    private readonly Dictionary<string, (TensorEntry Entry, TensorRef Tensor)> tensors = [];
    private readonly Dictionary<string, ZipArchiveEntry> storageEntries = [];
    private readonly Lock zipLock = new();

    /// <param name="path">The file.</param>
    /// <param name="stateDictKey">Key of the top-level dict that holds the state dict (Jukebox: "model"); null when the file is the state dict.</param>
    /// <param name="stripModulePrefix">Drop a leading "module." (left by DataParallel) from every tensor name.</param>
    public TorchPickleFile(string path, string? stateDictKey = null, bool stripModulePrefix = false)
    {
        Path = path;
        file = new FileStream(CheckpointFiles.OpenRead(path), FileAccess.Read);
        try
        {
            CheckMagic(path, file);
            zip = OpenZip(path, file);
            var dataPickle = zip.Entries.SingleOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)
                    && e.FullName.IndexOf('/', StringComparison.Ordinal) == e.FullName.Length - "/data.pkl".Length)
                ?? throw new CheckpointException($"{path} is a zip file but not a torch.save archive: it has no <archive>/data.pkl.");
            string archive = dataPickle.FullName[..^"data.pkl".Length];
            var host = new TorchPickleHost(path);
            var root = Unpickle(path, dataPickle, host);
            var (named, metadata) = TorchStateDict.Split(root, path, stateDictKey, stripModulePrefix);
            Metadata = metadata;
            foreach (var storage in host.Storages.Values)
                storageEntries[storage.Key] = FindStorage(path, zip, archive, storage);
            var entries = new Dictionary<string, TensorEntry>();
            foreach (var (name, tensor) in named)
            {
                CheckExtent(path, name, tensor);
                var entry = new TensorEntry(name, tensor.Storage.DType, tensor.Shape, path);
                tensors[name] = (entry, tensor);
                entries[name] = entry;
            }
            Entries = entries;
        }
        catch
        {
            zip?.Dispose();
            file.Dispose();
            throw;
        }
    }

    public string Path { get; }

    internal static ReadOnlySpan<byte> ZipMagic => [0x50, 0x4B, 0x03, 0x04];

    /// <summary>Legacy files open with a protocol-2 pickle of torch's magic number (PROTO 2, LONG1).</summary>
    internal static bool IsLegacyStart(ReadOnlySpan<byte> head) => head.Length >= 2 && head[0] == 0x80 && head[1] == 0x02;

    public IReadOnlyDictionary<string, TensorEntry> Entries { get; }

    /// <summary>
    /// Top-level values other than the state dict (e.g. Jukebox's <c>hps</c> and <c>step</c>), as plain .NET values:
    /// null, bool, long or BigInteger, double, string, byte[], object?[] (tuple), List&lt;object?&gt;,
    /// OrderedDictionary&lt;object, object?&gt;; tensors outside the state dict appear as <see cref="TensorEntry"/>.
    /// </summary>
    public IReadOnlyDictionary<string, object?> Metadata { get; }

    public void ReadInto(string name, torch.Tensor destination)
    {
        if (!tensors.TryGetValue(name, out var found))
            throw new CheckpointException($"{Path} holds no tensor named '{name}'.");
        var (entry, tensor) = found;
        TensorCopy.CheckDestination(entry, destination);
        int elementSize = entry.DType.ElementSize();
        // ZipArchive is not thread-safe, and stored entries still open as forward-only streams.
        lock (zipLock)
        {
            using var stream = storageEntries[tensor.Storage.Key].Open();
            Skip(stream, tensor.Offset * elementSize, name);
            SpanReader read = buffer => CheckpointFiles.ReadExactly(stream, buffer, Path, name);
            if (TensorLayout.IsContiguous(tensor.Shape, tensor.Stride))
                TensorCopy.ReadContiguous(entry, destination, read);
            else
                TensorCopy.ReadStrided(entry, tensor.Stride, TensorLayout.Extent(tensor), destination, read);
        }
    }

    public void Dispose()
    {
        zip.Dispose();
        file.Dispose();
    }

    private static void CheckMagic(string path, FileStream file)
    {
        Span<byte> magic = stackalloc byte[4];
        int read = file.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false);
        file.Position = 0;
        if (read == 4 && magic.SequenceEqual(ZipMagic))
            return;
        if (read >= 2 && IsLegacyStart(magic[..read]))
            throw new CheckpointException($"{path} is in torch's legacy (pre-1.6, non-zip) format: open it with {nameof(LegacyTorchPickleFile)} (CheckpointOpener does).");
        throw new CheckpointException($"{path} is not a torch.save zip file (no PK signature).");
    }

    private static ZipArchive OpenZip(string path, FileStream file)
    {
        try
        {
            return new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new CheckpointException($"{path} is a damaged zip file (truncated?): {e.Message}", e);
        }
    }

    private static object? Unpickle(string path, ZipArchiveEntry entry, TorchPickleHost host)
    {
        if (entry.Length > MaxPickleBytes)
            throw new CheckpointException($"{path}: {entry.FullName} claims {entry.Length} bytes, too large for a state dict's pickle.");
        var bytes = new byte[entry.Length];
        try
        {
            using var stream = entry.Open();
            CheckpointFiles.ReadExactly(stream, bytes, path, null);
        }
        catch (InvalidDataException e)
        {
            throw new CheckpointException($"{path}: {entry.FullName} cannot be read: {e.Message}", e);
        }
        using var memory = new MemoryStream(bytes, writable: false);
        return new PickleReader(memory, path, host).Load();
    }

    private static ZipArchiveEntry FindStorage(string path, ZipArchive zip, string archive, StorageRef storage)
    {
        var entry = zip.GetEntry($"{archive}data/{storage.Key}")
            ?? throw new CheckpointException($"{path} is missing storage '{storage.Key}' ({archive}data/{storage.Key}).");
        long needed = checked(storage.ElementCount * storage.DType.ElementSize());
        if (entry.Length < needed)
            throw new CheckpointException($"{path}: storage '{storage.Key}' holds {entry.Length} bytes, but its {storage.ElementCount} {storage.DType} elements need {needed}.");
        return entry;
    }

    private static void CheckExtent(string path, string name, TensorRef tensor)
    {
        if (tensor.Shape.Any(s => s == 0))
            return;
        long end;
        try
        {
            end = checked(tensor.Offset + TensorLayout.Extent(tensor));
        }
        catch (OverflowException)
        {
            end = long.MaxValue;
        }
        if (end > tensor.Storage.ElementCount)
            throw new CheckpointException(
                $"{path}: tensor '{name}' (offset {tensor.Offset}, shape {TensorCopy.FormatShape(tensor.Shape)}) reaches past the end of its storage of {tensor.Storage.ElementCount} elements.");
    }

    private void Skip(Stream stream, long count, string name)
    {
        if (stream.CanSeek)
        {
            stream.Seek(count, SeekOrigin.Current);
            return;
        }
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            for (long left = count; left > 0; left -= Math.Min(left, buffer.Length))
                CheckpointFiles.ReadExactly(stream, buffer.AsSpan(0, (int)Math.Min(left, buffer.Length)), Path, name);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
