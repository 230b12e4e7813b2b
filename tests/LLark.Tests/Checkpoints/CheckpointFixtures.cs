using System.IO.Compression;
using System.Text;
using LLark.Checkpoints;
using TorchSharp;

namespace LLark.Tests.Checkpoints;

/// <summary>Paths of the committed fixtures, and small helpers to read whole checkpoints or write broken ones.</summary>
internal static class CheckpointFixtures
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string LlamaTiny(string relative) => Path.Combine(RepoRoot, "tests", "fixtures", "llama-tiny", relative);

    public static string Checkpoints(string relative) => Path.Combine(RepoRoot, "tests", "fixtures", "checkpoints", relative);

    public static string GqaBf16 => LlamaTiny("llama-gqa-bf16/model.safetensors");

    public static string GqaFp32Index => LlamaTiny("llama-gqa-fp32-sharded/model.safetensors.index.json");

    public static string MhaFp16 => LlamaTiny("llama-mha-fp16/model.safetensors");

    /// <summary>Reads every tensor into a fresh CPU tensor of <paramref name="dtype"/> (the stored dtype when null).</summary>
    public static Dictionary<string, torch.Tensor> ReadAll(ITensorSource source, torch.ScalarType? dtype = null)
    {
        var result = new Dictionary<string, torch.Tensor>();
        foreach (var entry in source.Entries.Values)
        {
            var tensor = torch.empty(entry.Shape, dtype: dtype ?? entry.DType.ToScalarType());
            source.ReadInto(entry.Name, tensor);
            result[entry.Name] = tensor;
        }
        return result;
    }

    /// <summary>Same dtype, shape and bytes: stricter than ==, which calls -0 and 0 equal.</summary>
    public static void AssertBitwiseEqual(torch.Tensor expected, torch.Tensor actual, string because = "")
    {
        Assert.Equal(expected.dtype, actual.dtype);
        Assert.Equal(expected.shape, actual.shape);
        using var e = expected.contiguous();
        using var a = actual.contiguous();
        Assert.True(e.bytes.SequenceEqual(a.bytes), $"values differ: {because}");
    }

    /// <summary>A safetensors file from a raw header and data section, so tests can write any corruption.</summary>
    public static void WriteSafetensors(string path, string headerJson, byte[] data, ulong? headerLengthOverride = null)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        using var file = File.Create(path);
        file.Write(BitConverter.GetBytes(headerLengthOverride ?? (ulong)header.Length));
        file.Write(header);
        file.Write(data);
    }

    /// <summary>A well-formed safetensors file holding <paramref name="tensors"/> in their own dtypes, in the given order.</summary>
    public static void WriteSafetensors(string path, IEnumerable<(string Name, torch.Tensor Tensor)> tensors)
    {
        var header = new List<string>();
        var data = new List<byte>();
        foreach (var (name, tensor) in tensors)
        {
            using var contiguous = tensor.contiguous();
            var bytes = contiguous.bytes.ToArray();
            header.Add($"\"{name}\":{{\"dtype\":\"{SafetensorsDType(tensor.dtype)}\",\"shape\":[{string.Join(",", tensor.shape)}],\"data_offsets\":[{data.Count},{data.Count + bytes.Length}]}}");
            data.AddRange(bytes);
        }
        WriteSafetensors(path, "{" + string.Join(",", header) + "}", [.. data]);
    }

    private static string SafetensorsDType(torch.ScalarType dtype) => dtype switch
    {
        torch.ScalarType.Float32 => "F32",
        torch.ScalarType.Float16 => "F16",
        torch.ScalarType.BFloat16 => "BF16",
        torch.ScalarType.Int64 => "I64",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>A torch.save-shaped zip: <c>archive/data.pkl</c> plus the given storages under <c>archive/data/</c>.</summary>
    public static void WriteTorchZip(string path, byte[] pickle, IReadOnlyDictionary<string, byte[]>? storages = null)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        Add(zip, "archive/data.pkl", pickle);
        foreach (var (key, bytes) in storages ?? new Dictionary<string, byte[]>())
            Add(zip, $"archive/data/{key}", bytes);
    }

    private static void Add(ZipArchive zip, string name, byte[] bytes)
    {
        using var stream = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
        stream.Write(bytes);
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LLark.Services.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"No LLark.Services.sln above {AppContext.BaseDirectory}.");
    }
}

/// <summary>A temporary directory, deleted with everything in it on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "llark-checkpoints-" + Guid.NewGuid().ToString("N"));

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
