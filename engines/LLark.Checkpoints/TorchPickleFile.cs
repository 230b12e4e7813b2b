using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using Microsoft.Win32.SafeHandles;
using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>
/// A <c>torch.save</c> file, in the zip format of torch ≥ 1.6 (Hugging Face <c>pytorch_model*.bin</c>, Jukebox
/// <c>*.pth</c> re-saved) or the legacy format before it (the released Jukebox <c>*.pth.tar</c>).
/// </summary>
/// <remarks>
/// Zip: <c>&lt;archive&gt;/data.pkl</c> is unpickled with an allow-list that only builds tensors; each storage is
/// the zip entry <c>&lt;archive&gt;/data/&lt;key&gt;</c>, read on demand. Legacy: a sequence of protocol-2 pickles
/// (magic number, protocol version 1001, sys_info, the object, the list of storage keys), then each storage in
/// the order of that list as an int64 element count followed by its little-endian data.
/// </remarks>
public sealed class TorchPickleFile : ITensorSource
{
    // data.pkl holds names and shapes only; even a 70B model's is a few MB. Larger means a corrupt length.
    private const long MaxPickleBytes = 256L << 20;

    private const long LegacyProtocolVersion = 1001;

    private static readonly BigInteger LegacyMagicNumber = BigInteger.Parse("119547037146038801333356", System.Globalization.CultureInfo.InvariantCulture);

    private readonly SafeFileHandle handle;
    private readonly FileStream file;
    private readonly ZipArchive? zip;
    private readonly Dictionary<string, (TensorEntry Entry, TensorRef Tensor)> tensors = [];
    private readonly Dictionary<string, ZipArchiveEntry> storageEntries = [];
    private readonly Dictionary<string, long> legacyStorageOffsets = [];
    private readonly Lock zipLock = new();

    /// <param name="path">The file.</param>
    /// <param name="stateDictKey">Key of the top-level dict that holds the state dict (Jukebox: "model"); null when the file is the state dict.</param>
    /// <param name="stripModulePrefix">Drop a leading "module." (left by DataParallel) from every tensor name.</param>
    public TorchPickleFile(string path, string? stateDictKey = null, bool stripModulePrefix = false)
    {
        Path = path;
        handle = CheckpointFiles.OpenRead(path);
        file = new FileStream(handle, FileAccess.Read);
        try
        {
            var host = new TorchPickleHost(path);
            object? root;
            string? archive = null;
            if (IsZip(path, file))
            {
                zip = OpenZip(path, file);
                var dataPickle = zip.Entries.SingleOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)
                        && e.FullName.IndexOf('/', StringComparison.Ordinal) == e.FullName.Length - "/data.pkl".Length)
                    ?? throw new CheckpointException($"{path} is a zip file but not a torch.save archive: it has no <archive>/data.pkl.");
                archive = dataPickle.FullName[..^"data.pkl".Length];
                root = Unpickle(path, dataPickle, host);
            }
            else
            {
                root = ReadLegacy(path, file, handle, host, legacyStorageOffsets);
            }
            var (named, metadata) = TorchStateDict.Split(root, path, stateDictKey, stripModulePrefix);
            Metadata = metadata;
            if (zip is not null)
            {
                foreach (var storage in host.Storages.Values)
                    storageEntries[storage.Key] = FindStorage(path, zip, archive!, storage);
            }
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

    /// <summary>
    /// Legacy files open with a protocol-2 pickle of torch's 10-byte magic number: PROTO 2, LONG1 of length 10.
    /// Two bytes are not enough: a safetensors file whose header is 640 bytes long also starts 80 02. As a
    /// little-endian header length these four bytes exceed any safetensors header (over 176 MB).
    /// </summary>
    internal static bool IsLegacyStart(ReadOnlySpan<byte> head) => head.Length >= 4 && head[..4].SequenceEqual(LegacyStart);

    private static ReadOnlySpan<byte> LegacyStart => [0x80, 0x02, 0x8a, 0x0a];

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
        if (zip is null)
        {
            // Legacy storages lie in the file itself; positional reads need no lock.
            long position = legacyStorageOffsets[tensor.Storage.Key] + tensor.Offset * elementSize;
            Copy(entry, tensor, destination, buffer =>
            {
                CheckpointFiles.ReadExactly(handle, buffer, position, Path, name);
                position += buffer.Length;
            });
            return;
        }
        // ZipArchive is not thread-safe, and stored entries still open as forward-only streams.
        lock (zipLock)
        {
            using var stream = OpenStorage(storageEntries[tensor.Storage.Key], name);
            Skip(stream, tensor.Offset * elementSize, name);
            Copy(entry, tensor, destination, buffer => CheckpointFiles.ReadExactly(stream, buffer, Path, name));
        }
    }

    /// <summary>The central directory was read on open; a local header is only checked when its entry is opened.</summary>
    private Stream OpenStorage(ZipArchiveEntry entry, string name)
    {
        try
        {
            return entry.Open();
        }
        catch (InvalidDataException e)
        {
            throw new CheckpointException($"Reading tensor '{name}' in {Path} failed: zip entry {entry.FullName} is damaged: {e.Message}", e);
        }
    }

    private static void Copy(TensorEntry entry, TensorRef tensor, torch.Tensor destination, SpanReader read)
    {
        if (IsContiguous(tensor.Shape, tensor.Stride))
            TensorCopy.ReadContiguous(entry, destination, read);
        else
            TensorCopy.ReadStrided(entry, tensor.Stride, Extent(tensor), destination, read);
    }

    public void Dispose()
    {
        zip?.Dispose();
        file.Dispose();
    }

    /// <summary>True for a zip file, false for a legacy one; anything else is refused.</summary>
    private static bool IsZip(string path, FileStream file)
    {
        Span<byte> magic = stackalloc byte[4];
        int read = file.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false);
        file.Position = 0;
        if (read == 4 && magic.SequenceEqual(ZipMagic))
            return true;
        if (IsLegacyStart(magic[..read]))
            return false;
        throw new CheckpointException($"{path} is not a torch.save file: it starts with neither a zip signature nor the legacy pickle header.");
    }

    /// <summary>
    /// Reads the pickles of a legacy file and finds each storage's data after them, checking every element count
    /// and that the data fits in the file, so a truncated file fails here rather than while loading.
    /// </summary>
    private static object? ReadLegacy(string path, FileStream file, SafeFileHandle handle, TorchPickleHost host, Dictionary<string, long> offsets)
    {
        // The pickles around the object hold plain data; a host of their own keeps them out of the tensor bookkeeping.
        var plain = new TorchPickleHost(path);
        if (new PickleReader(file, path, plain).Load() is not BigInteger magic || magic != LegacyMagicNumber)
            throw new CheckpointException($"{path} does not begin with torch's legacy magic number (corrupt file?).");
        if (new PickleReader(file, path, plain).Load() is not LegacyProtocolVersion)
            throw new CheckpointException($"{path} has a legacy protocol version other than {LegacyProtocolVersion}.");
        var sysInfo = new PickleReader(file, path, plain).Load() as OrderedDictionary<object, object?>;
        if (sysInfo is not null && sysInfo.TryGetValue("little_endian", out var littleEndian) && littleEndian is false)
            throw new CheckpointException($"{path} was saved on a big-endian machine, which this reader does not support.");
        var root = new PickleReader(file, path, host).Load();
        if (new PickleReader(file, path, plain).Load() is not List<object?> keys)
            throw new CheckpointException($"{path}: the legacy storage key list is not a list.");

        long position = file.Position, length = file.Length;
        Span<byte> countBytes = stackalloc byte[8];
        foreach (var item in keys)
        {
            if (item is not string key || !host.Storages.TryGetValue(key, out var storage))
                throw new CheckpointException($"{path}: the legacy storage list names '{item}', which no tensor in the file uses.");
            if (offsets.ContainsKey(key))
                throw new CheckpointException($"{path}: the legacy storage list names storage '{key}' twice.");
            CheckpointFiles.ReadExactly(handle, countBytes, position, path, null);
            long count = BinaryPrimitives.ReadInt64LittleEndian(countBytes);
            if (count != storage.ElementCount)
                throw new CheckpointException($"{path}: storage '{key}' at byte {position} holds {count} elements, but its tensors were saved with {storage.ElementCount}.");
            position += 8;
            long bytes = storage.ElementCount * storage.DType.ElementSize();
            if (bytes > length - position)
                throw new CheckpointException($"{path} is truncated: storage '{key}' needs {bytes} bytes from byte {position}, but the file ends at byte {length}.");
            offsets[key] = position;
            position += bytes;
        }
        var absent = host.Storages.Keys.Where(k => !offsets.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        if (absent.Count > 0)
            throw new CheckpointException($"{path}: the legacy storage list lacks {absent.Count} storages that tensors use ({Names.Summarize(absent)}).");
        return root;
    }

    private static ZipArchive OpenZip(string path, FileStream file)
    {
        ZipArchive? zip = null;
        try
        {
            zip = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
            // The central directory is read on first use of Entries; a damaged one must fail here, as a damaged zip.
            _ = zip.Entries;
            return zip;
        }
        catch (InvalidDataException e)
        {
            zip?.Dispose();
            throw new CheckpointException($"{path} is a damaged zip file (truncated?): {e.Message}", e);
        }
    }

    private static object? Unpickle(string path, ZipArchiveEntry entry, TorchPickleHost host)
    {
        if (entry.Length > MaxPickleBytes)
            throw new CheckpointException($"{path}: {entry.FullName} claims {entry.Length} bytes, too large for a state dict's pickle.");
        // The length is only the central directory's claim: the buffer grows with the bytes that arrive, so a damaged
        // length in a small file cannot make it allocate up to the limit.
        using var pickle = new MemoryStream();
        try
        {
            using var stream = entry.Open();
            var chunk = new byte[81920];
            int read;
            while ((read = stream.Read(chunk)) > 0 && pickle.Length <= entry.Length)
                pickle.Write(chunk, 0, read);
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new CheckpointException($"{path}: {entry.FullName} cannot be read: {e.Message}", e);
        }
        if (pickle.Length != entry.Length)
            throw new CheckpointException($"{path}: {entry.FullName} holds {pickle.Length} bytes, not the {entry.Length} its zip directory claims (truncated or damaged).");
        pickle.Position = 0;
        return new PickleReader(pickle, path, host).Load();
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
            end = checked(tensor.Offset + Extent(tensor));
        }
        catch (OverflowException)
        {
            end = long.MaxValue;
        }
        if (end > tensor.Storage.ElementCount)
            throw new CheckpointException(
                $"{path}: tensor '{name}' (offset {tensor.Offset}, shape {TensorCopy.FormatShape(tensor.Shape)}) reaches past the end of its storage of {tensor.Storage.ElementCount} elements.");
    }

    /// <summary>Elements from the first to the last one the view touches, inclusive.</summary>
    private static long Extent(TensorRef tensor) =>
        checked(1 + tensor.Shape.Zip(tensor.Stride, (size, stride) => checked((size - 1) * stride)).Sum());

    /// <summary>Row-major contiguity; a dimension of size 1 may carry any stride, as in torch.</summary>
    private static bool IsContiguous(long[] shape, long[] stride)
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
