using System.Text;
using LLark.Checkpoints;
using TorchSharp;
using static LLark.Tests.Checkpoints.CheckpointFixtures;

namespace LLark.Tests.Checkpoints;

/// <summary>
/// Missing, empty, truncated, corrupt and hostile checkpoints: each must fail with a <see cref="CheckpointException"/>
/// that names the file (and the tensor, where there is one) and the problem, never crash, hang or run code.
/// </summary>
public sealed class BadCheckpointTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    private static CheckpointException Fails(Func<ITensorSource> open, params string[] expected)
    {
        var e = Assert.Throws<CheckpointException>(() => open().Dispose());
        foreach (string part in expected)
            Assert.Contains(part, e.Message, StringComparison.Ordinal);
        return e;
    }

    private string Safetensors(string header, byte[]? data = null, ulong? headerLength = null, string name = "bad.safetensors")
    {
        string path = dir.File(name);
        WriteSafetensors(path, header, data ?? [], headerLength);
        return path;
    }

    // ---- missing and empty files

    [Fact]
    public void MissingFilesAreNamed()
    {
        string missing = dir.File("absent.safetensors");
        Fails(() => new SafetensorsFile(missing), "Cannot open checkpoint file", missing);
        Fails(() => new TorchPickleFile(missing), "Cannot open checkpoint file", missing);
        Fails(() => new ShardedTensorSource(missing + ".index.json"), "Cannot read checkpoint index", missing);
        Fails(() => CheckpointOpener.Open(missing), $"Checkpoint {missing} does not exist.");
    }

    [Fact]
    public void MissingAndEmptyDirectoriesAreNamed()
    {
        string missing = Path.Combine(dir.Path, "no-such-model");
        Fails(() => CheckpointOpener.Open(missing), missing, "does not exist");
        Fails(() => CheckpointOpener.Open(dir.Path), $"Checkpoint directory {dir.Path} holds none of: model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json.");
    }

    [Theory]
    [InlineData("model.safetensors", "is truncated: 0 bytes")]
    [InlineData("pytorch_model.bin", "is truncated: 0 bytes")]
    [InlineData("model.safetensors.index.json", "is not valid JSON")]
    public void EmptyFilesAreRefused(string name, string problem)
    {
        File.WriteAllBytes(dir.File(name), []);
        Fails(() => CheckpointOpener.Open(dir.Path), dir.File(name), problem);
        Fails(() => CheckpointOpener.Open(dir.File(name)), dir.File(name), problem);
    }

    [Fact]
    public void EmptyFileIsNotATorchFile()
    {
        File.WriteAllBytes(dir.File("empty.pt"), []);
        Fails(() => new TorchPickleFile(dir.File("empty.pt")), dir.File("empty.pt"), "is not a torch.save file");
    }

    // ---- safetensors headers

    [Theory]
    [InlineData(1000UL)]
    [InlineData(ulong.MaxValue)]
    [InlineData(200_000_000UL)]
    public void HeaderLengthBeyondTheFileIsRefused(ulong length)
    {
        string path = Safetensors("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", new byte[4], length);
        Fails(() => new SafetensorsFile(path), path, $"its header length ({length} bytes) exceeds the file's remaining");
    }

    [Fact]
    public void ShorterThanTheLengthFieldIsTruncated()
    {
        File.WriteAllBytes(dir.File("short.safetensors"), [1, 0, 0]);
        Fails(() => new SafetensorsFile(dir.File("short.safetensors")), "is truncated: 3 bytes, shorter than the 8-byte safetensors header length");
    }

    [Theory]
    [InlineData("{\"a\": {\"dtype\": \"F32\",")]
    [InlineData("not json at all")]
    [InlineData("")]
    public void HeaderThatIsNotJsonIsRefused(string header)
    {
        string path = Safetensors(header);
        Fails(() => new SafetensorsFile(path), path, "has a safetensors header that is not valid JSON");
    }

    [Fact]
    public void HeaderThatIsNotUtf8IsRefused()
    {
        string path = dir.File("latin1.safetensors");
        byte[] header = [.. "{\"caf"u8, 0xE9, .. "\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}"u8];
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)header.Length), .. header, 0, 0, 0, 0]);
        Fails(() => new SafetensorsFile(path), path, "has a safetensors header that is not valid UTF-8");
    }

    [Theory]
    [InlineData("[1, 2]", "has a safetensors header that is not a JSON object")]
    [InlineData("""{"a": [1]}""", "tensor 'a' is not described by a JSON object")]
    [InlineData("""{"a": {"shape": [1], "data_offsets": [0, 4]}}""", "tensor 'a' has no dtype")]
    [InlineData("""{"a": {"dtype": "F32", "data_offsets": [0, 4]}}""", "tensor 'a' has no shape array")]
    [InlineData("""{"a": {"dtype": "F32", "shape": [1]}}""", "tensor 'a' has no data_offsets array")]
    [InlineData("""{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}""", "tensor 'a' has 3 data_offsets values instead of 2")]
    [InlineData("""{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}""", "tensor 'a' has a shape value that is not a non-negative integer: -1")]
    [InlineData("""{"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}""", "tensor 'a' has a shape value that is not a non-negative integer: 1.5")]
    [InlineData("""{"a": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}}""", "tensor 'a' has a shape value that is not a non-negative integer: \"1\"")]
    [InlineData("""{"a": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}}""", "tensor 'a' has no dtype")]
    [InlineData("""{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}""", "lists tensor 'a' twice in its header")]
    public void MalformedEntriesNameTheTensor(string header, string problem)
    {
        string path = Safetensors(header, new byte[16]);
        Fails(() => new SafetensorsFile(path), path, problem);
    }

    [Theory]
    [InlineData("F8_E4M3")]
    [InlineData("Q4")]
    [InlineData("f32")]
    [InlineData("U16")]
    public void UnknownDtypesAreNamed(string dtype)
    {
        string path = Safetensors($$$"""{"w":{"dtype":"{{{dtype}}}","shape":[4],"data_offsets":[0,4]}}""", new byte[4]);
        Fails(() => new SafetensorsFile(path), path, $"tensor 'w' has dtype '{dtype}', which this reader does not support");
    }

    [Theory]
    [InlineData("[3]", "[0, 8]", "spans 8 bytes, but shape [3] of F32 needs 12")]
    [InlineData("[2, 2]", "[0, 12]", "spans 12 bytes, but shape [2, 2] of F32 needs 16")]
    [InlineData("[]", "[0, 0]", "spans 0 bytes, but shape [] of F32 needs 4")]
    [InlineData("[0, 5]", "[0, 4]", "spans 4 bytes, but shape [0, 5] of F32 needs 0")]
    [InlineData("[4611686018427387904, 4]", "[0, 16]", "has shape [4611686018427387904, 4], too large to address")]
    [InlineData("[2305843009213693952]", "[0, 16]", "has shape [2305843009213693952], too large to address")]
    public void ShapeThatDisagreesWithTheOffsetsIsRefused(string shape, string offsets, string problem)
    {
        string path = Safetensors($$$"""{"w":{"dtype":"F32","shape":{{{shape}}},"data_offsets":{{{offsets}}}}}""", new byte[16]);
        Fails(() => new SafetensorsFile(path), path, "tensor 'w'", problem);
    }

    [Theory]
    [InlineData("[0, 20]")]
    [InlineData("[16, 20]")]
    [InlineData("[8, 4]")]
    [InlineData("[0, 18446744073709551615]")]
    public void OffsetsOutsideTheDataAreRefused(string offsets)
    {
        string path = Safetensors($$$"""{"w":{"dtype":"U8","shape":[4],"data_offsets":{{{offsets}}}}}""", new byte[16]);
        Fails(() => new SafetensorsFile(path), path, "tensor 'w'");
    }

    [Fact]
    public void OffsetsPastTheEndSayTruncated()
    {
        string path = Safetensors("""{"w":{"dtype":"U8","shape":[20],"data_offsets":[0,20]}}""", new byte[16]);
        Fails(() => new SafetensorsFile(path), path, "tensor 'w' has data_offsets [0, 20] outside the data section of 16 bytes (truncated or corrupt file)");
    }

    [Fact]
    public void TruncatedRealFileNamesTheLastTensor()
    {
        string path = dir.File("model.safetensors");
        var bytes = File.ReadAllBytes(GqaBf16);
        File.WriteAllBytes(path, bytes[..^100]);
        Fails(() => CheckpointOpener.Open(dir.Path), path, "tensor 'lm_head.weight'", "(truncated or corrupt file)");
    }

    [Fact]
    public void FileTruncatedAfterOpenFailsWhileReading()
    {
        string path = dir.File("shrinks.safetensors");
        File.Copy(GqaBf16, path);
        using var file = new SafetensorsFile(path);
        using (var writer = File.Open(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
            writer.SetLength(writer.Length - 100);
        using var scope = torch.NewDisposeScope();
        var embed = torch.empty([1024, 128], dtype: torch.ScalarType.BFloat16);
        file.ReadInto("model.embed_tokens.weight", embed);
        var head = torch.empty([1024, 128], dtype: torch.ScalarType.Float32);
        var e = Assert.Throws<CheckpointException>(() => file.ReadInto("lm_head.weight", head));
        Assert.Contains($"tensor 'lm_head.weight' in {path} is truncated: the file ends at byte", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[0, 8]", "[4, 12]")]
    [InlineData("[0, 8]", "[0, 8]")]
    [InlineData("[4, 8]", "[0, 12]")]
    public void OverlappingDataIsRefused(string a, string b)
    {
        string path = Safetensors($$$"""{"a":{"dtype":"F32","shape":[{{{Count(a)}}}],"data_offsets":{{{a}}}},"b":{"dtype":"F32","shape":[{{{Count(b)}}}],"data_offsets":{{{b}}}}}""", new byte[16]);
        Fails(() => new SafetensorsFile(path), path, "overlaps that of");
    }

    private static int Count(string offsets)
    {
        var parts = offsets.Trim('[', ']').Split(',');
        return (int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) - int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture)) / 4;
    }

    [Fact]
    public void HeaderOrderNeedNotBeFileOrder()
    {
        using var scope = torch.NewDisposeScope();
        // "b" comes first in the header but second in the data; empty tensors may sit anywhere.
        string path = Safetensors(
            """{"__metadata__":{"format":"pt","n":3},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""",
            [.. BitConverter.GetBytes(1f), .. BitConverter.GetBytes(2f)]);
        using var file = new SafetensorsFile(path);
        Assert.Equal(["a", "e", "b"], file.Entries.Keys);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.False(file.Metadata.ContainsKey("n"));
        var b = torch.empty(1);
        file.ReadInto("b", b);
        Assert.Equal(2f, b.item<float>());
    }

    [Fact]
    public void ZeroSizeTensorAtTheStartOfAnotherIsNotAnOverlap()
    {
        using var scope = torch.NewDisposeScope();
        // As the safetensors library orders them, by (begin, end): "e" [4, 4] comes before "b" [4, 8].
        string path = Safetensors(
            """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}""",
            [.. BitConverter.GetBytes(1f), .. BitConverter.GetBytes(2f)]);
        using var file = new SafetensorsFile(path);
        Assert.Equal(["a", "e", "b"], file.Entries.Keys);
        var b = torch.empty(1);
        file.ReadInto("b", b);
        Assert.Equal(2f, b.item<float>());
    }

    [Fact]
    public void ReadIntoChecksTheNameAndTheDestination()
    {
        using var scope = torch.NewDisposeScope();
        using var file = new SafetensorsFile(GqaBf16);
        Fails2(() => file.ReadInto("model.nope.weight", torch.empty(1)), GqaBf16, "holds no tensor named 'model.nope.weight'");
        Fails2(() => file.ReadInto("model.norm.weight", torch.empty(127)), "Tensor 'model.norm.weight'", GqaBf16, "has shape [128], but the destination has shape [127]");
        Fails2(() => file.ReadInto("model.embed_tokens.weight", torch.empty(128, 1024).t()), "into a non-contiguous destination");
        Fails2(() => file.ReadInto("model.norm.weight", torch.empty(128, device: torch.META)), "'model.norm.weight'", "the destination must be on the CPU");
    }

    private static void Fails2(Action action, params string[] expected)
    {
        var e = Assert.Throws<CheckpointException>(action);
        foreach (string part in expected)
            Assert.Contains(part, e.Message, StringComparison.Ordinal);
    }

    // ---- torch.save zip files

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.999)]
    [InlineData(0.01)]
    public void TruncatedZipIsRefused(double keep)
    {
        string path = dir.File("pytorch_model.bin");
        var bytes = File.ReadAllBytes(CheckpointFixtures.Checkpoints("llama-gqa-bin-fp16/pytorch_model.bin"));
        File.WriteAllBytes(path, bytes[..(int)(bytes.Length * keep)]);
        Fails(() => CheckpointOpener.Open(dir.Path), path, "is a damaged zip file (truncated?)");
    }

    [Fact]
    public void ZipThatIsNotATorchArchiveIsRefused()
    {
        string path = dir.File("other.zip");
        using (var zip = System.IO.Compression.ZipFile.Open(path, System.IO.Compression.ZipArchiveMode.Create))
            zip.CreateEntry("readme.txt");
        Fails(() => CheckpointOpener.Open(path), path, "is a zip file but not a torch.save archive: it has no <archive>/data.pkl");
    }

    [Fact]
    public void CorruptStorageEntryFailsOnRead()
    {
        using var scope = torch.NewDisposeScope();
        string path = dir.File("m.pt");
        WriteTorchZip(path, PickleWriter.FloatStateDict(("a", [2]), ("b", [2])), new Dictionary<string, byte[]>
        {
            ["0"] = new byte[8],
            ["1"] = new byte[8],
        });
        // Break the local header of storage "1" (the central directory still lists it).
        var bytes = File.ReadAllBytes(path);
        int header = IndexOf(bytes, "PK\u0003\u0004"u8.ToArray(), IndexOf(bytes, "archive/data/1"u8.ToArray(), 0) - 30);
        bytes[header + 2] = 0xFF;
        File.WriteAllBytes(path, bytes);

        using var file = new TorchPickleFile(path);
        file.ReadInto("a", torch.empty(2));
        Fails2(() => file.ReadInto("b", torch.empty(2)), $"Reading tensor 'b' in {path} failed: zip entry archive/data/1 is damaged");
    }

    private static int IndexOf(byte[] haystack, byte[] needle, int from)
    {
        for (int i = Math.Max(0, from); i <= haystack.Length - needle.Length; i++)
        {
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle))
                return i;
        }
        throw new InvalidOperationException("not found");
    }

    [Fact]
    public void MissingOrShortStoragesAreNamed()
    {
        var pickle = PickleWriter.FloatStateDict(("a", [2]), ("b", [3]));
        WriteTorchZip(dir.File("missing.pt"), pickle, new Dictionary<string, byte[]> { ["0"] = new byte[8] });
        Fails(() => new TorchPickleFile(dir.File("missing.pt")), dir.File("missing.pt"), "is missing storage '1' (archive/data/1)");
        WriteTorchZip(dir.File("short.pt"), pickle, new Dictionary<string, byte[]> { ["0"] = new byte[8], ["1"] = new byte[11] });
        Fails(() => new TorchPickleFile(dir.File("short.pt")), dir.File("short.pt"), "storage '1' holds 11 bytes, but its 3 F32 elements need 12");
    }

    [Theory]
    [InlineData(1, new long[] { 2 }, new long[] { 1 }, "reaches past the end of its storage of 2 elements")]
    [InlineData(0, new long[] { 2, 2 }, new long[] { 1, 1 }, "reaches past the end of its storage of 2 elements")]
    [InlineData(0, new long[] { 3, 2 }, new long[] { 4611686018427387904, 1 }, "reaches past the end of its storage of 2 elements")]
    [InlineData(-1, new long[] { 1 }, new long[] { 1 }, "negative offset or stride")]
    [InlineData(0, new long[] { 2 }, new long[] { -1 }, "negative offset or stride")]
    [InlineData(0, new long[] { -2 }, new long[] { 1 }, "impossible size")]
    [InlineData(0, new long[] { 2 }, new long[] { 1, 1 }, "malformed (storage, offset, size, stride)")]
    public void ViewsOutsideTheirStorageAreRefused(long offset, long[] shape, long[] stride, string problem)
    {
        var pickle = new PickleWriter().EmptyDict().Mark().Str("w").Tensor("FloatStorage", "0", 2, offset, shape, stride).SetItems().Stop();
        WriteTorchZip(dir.File("view.pt"), pickle, new Dictionary<string, byte[]> { ["0"] = new byte[8] });
        Fails(() => new TorchPickleFile(dir.File("view.pt")), dir.File("view.pt"), problem);
    }

    public static TheoryData<string, byte[], string> BrokenPickles => new()
    {
        { "no STOP", new PickleWriter().EmptyDict().Stop()[..^1], "malformed pickle: the pickle is truncated" },
        { "unknown opcode", new PickleWriter().Op(0xff).Stop(), "opcode 0xff at byte 2 is not one torch.save emits" },
        { "PERSID text", new PickleWriter().Op('P').Op("0\n"u8.ToArray()).Stop(), "opcode 0x50" },
        { "stack underflow", new PickleWriter().Op('0').Stop(), "stack underflow" },
        { "no mark", new PickleWriter().Tuple().Stop(), "needs a MARK that was never set" },
        { "memo", new PickleWriter().Op('h', 7).Stop(), "memo slot 7 was never set" },
        { "string past end", new PickleWriter().Op('X', 0xff, 0xff, 0xff, 0x7f).Stop(), "a length of 2147483647 runs past the end of the pickle" },
        { "bytes8 past end", new PickleWriter().Op(0x8e, 0, 0, 0, 0, 0, 0, 0, 0x80).Stop(), "runs past the end of the pickle" },
        { "odd dict", new PickleWriter().Mark().Str("a").Op('d').Stop(), "odd number of keys and values" },
        { "None key", new PickleWriter().EmptyDict().None().Int(1).Op('s').Stop(), "None as a dict key is not supported" },
        { "append to dict", new PickleWriter().EmptyDict().Int(1).Op('a').Stop(), "found OrderedDictionary`2 where it needs a List`1" },
        { "top-level list", new PickleWriter().EmptyList().Stop(), "holds a List`1 at its top level, not a dict of tensors" },
        { "top-level None", new PickleWriter().None().Stop(), "holds a None at its top level" },
        { "call a string", new PickleWriter().Str("x").EmptyTuple().Reduce().Stop(), "it calls a String, which is not callable" },
        { "bad persistent id", new PickleWriter().Mark().Str("storage").Tuple().Op('Q').Stop(), "a persistent id is not a ('storage', type, key, location, numel) tuple" },
        { "persistent id class", new PickleWriter().Mark().Str("storage").Str("FloatStorage").Str("0").Str("cpu").Int(1).Tuple().Op('Q').Stop(), "does not name a torch storage class" },
        { "persistent id count", new PickleWriter().Mark().Str("storage").Global("torch", "FloatStorage").Str("0").Str("cpu").Int(-1).Tuple().Op('Q').Stop(), "malformed key or element count" },
        { "storage twice", new PickleWriter().EmptyDict().Mark()
            .Str("a").Tensor("FloatStorage", "0", 2, 0, [2], [1])
            .Str("b").Tensor("HalfStorage", "0", 2, 0, [2], [1]).SetItems().Stop(), "storage '0' is described twice, differently" },
        { "OrderedDict with items", new PickleWriter().Global("collections", "OrderedDict").Mark().EmptyList().Tuple().Reduce().Stop(), "it calls collections.OrderedDict with arguments this reader does not expect" },
        { "storage call", new PickleWriter().Global("torch", "FloatStorage").Mark().Int(4).Tuple().Reduce().Stop(), "it calls torch.FloatStorage" },
        { "build on list", new PickleWriter().EmptyList().EmptyDict().Op('b').Stop(), "it sets state on a List`1" },
        { "parameter of nothing", new PickleWriter().Global("torch._utils", "_rebuild_parameter").Mark().None().Tuple().Reduce().Stop(), "_rebuild_parameter has no tensor" },
        { "non-string key", new PickleWriter().EmptyDict().Int(5).Tensor("FloatStorage", "0", 2, 0, [2], [1]).Op('s').Stop(), "has a tensor under the non-string key 5" },
    };

    [Theory]
    [MemberData(nameof(BrokenPickles))]
    public void BrokenPicklesAreRefused(string what, byte[] pickle, string problem)
    {
        string path = dir.File("broken.pt");
        WriteTorchZip(path, pickle, new Dictionary<string, byte[]> { ["0"] = new byte[8] });
        var e = Fails(() => new TorchPickleFile(path), path, problem);
        Assert.False(string.IsNullOrEmpty(what), e.Message);
    }

    [Fact]
    public void StateDictKeyThatIsAbsentListsTheKeys()
    {
        string path = TestSupport.RepoPaths.Fixture("jukebox-tiny", "vqvae.zip.pth");
        Fails(() => new TorchPickleFile(path, stateDictKey: "state_dict"), path, "has no dict under key 'state_dict'; its top-level keys are: hps, model, step.");
        Fails(() => new TorchPickleFile(path, stateDictKey: "step"), "has no dict under key 'step'");
    }

    [Fact]
    public void StrippingThePrefixMustNotMergeTwoTensors()
    {
        var pickle = new PickleWriter().EmptyDict().Mark()
            .Str("module.w").Tensor("FloatStorage", "0", 2, 0, [2], [1])
            .Str("w").Tensor("FloatStorage", "0", 2, 0, [2], [1]).SetItems().Stop();
        WriteTorchZip(dir.File("dup.pt"), pickle, new Dictionary<string, byte[]> { ["0"] = new byte[8] });
        using (var kept = new TorchPickleFile(dir.File("dup.pt")))
            Assert.Equal(["module.w", "w"], kept.Entries.Keys);
        Fails(() => new TorchPickleFile(dir.File("dup.pt"), stripModulePrefix: true), "holds two tensors named 'w' once the 'module.' prefix is removed");
    }

    // ---- hostile pickles

    public static TheoryData<string, string, bool> HostileGlobals => new()
    {
        { "os", "system", false },
        { "posix", "system", false },
        { "builtins", "eval", false },
        { "builtins", "exec", true },
        { "builtins", "getattr", true },
        { "__builtin__", "eval", false },
        { "subprocess", "Popen", true },
        { "torch", "load", false },
        { "torch._utils", "_rebuild_device_tensor_from_numpy", false },
        { "numpy.core.multiarray", "_reconstruct", true },
    };

    [Theory]
    [MemberData(nameof(HostileGlobals))]
    public void DisallowedGlobalsAreRefusedNotCalled(string module, string name, bool stackGlobal)
    {
        string marker = dir.File("pwned");
        var pickle = new PickleWriter();
        pickle = stackGlobal ? pickle.StackGlobal(module, name) : pickle.Global(module, name);
        var bytes = pickle.Mark().Str($"touch {marker}").Tuple().Reduce().Stop();
        WriteTorchZip(dir.File("evil.pt"), bytes);

        Fails(() => CheckpointOpener.Open(dir.File("evil.pt")), dir.File("evil.pt"), $"the pickle refers to '{module}.{name}', which is not one of the globals that build tensors; refusing to load it.");
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public void DisallowedGlobalInsideAStateDictIsRefused()
    {
        // A real state dict with one poisoned value after a valid tensor.
        var pickle = new PickleWriter().EmptyDict().Mark()
            .Str("w").Tensor("FloatStorage", "0", 2, 0, [2], [1])
            .Str("x").Global("os", "system").Mark().Str("echo hi").Tuple().Reduce()
            .SetItems().Stop();
        WriteTorchZip(dir.File("evil.pt"), pickle, new Dictionary<string, byte[]> { ["0"] = new byte[8] });
        Fails(() => new TorchPickleFile(dir.File("evil.pt")), "'os.system'", "refusing to load it");
    }

    [Theory]
    [InlineData((byte)'i', "opcode 0x69")]
    [InlineData((byte)'o', "opcode 0x6f")]
    public void InstAndObjOpcodesAreRefused(byte op, string problem)
    {
        // INST and OBJ build instances of any class; torch.save never emits them.
        var pickle = op == 'i'
            ? new PickleWriter().Mark().Str("id").Op('i').Op("os\nsystem\n"u8.ToArray()).Stop()
            : new PickleWriter().Mark().Global("os", "system").Str("id").Op('o').Stop();
        WriteTorchZip(dir.File("evil.pt"), pickle);
        var e = Fails(() => new TorchPickleFile(dir.File("evil.pt")), dir.File("evil.pt"));
        Assert.True(e.Message.Contains(problem, StringComparison.Ordinal) || e.Message.Contains("'os.system'", StringComparison.Ordinal), e.Message);
    }

    [Fact]
    public void DisallowedGlobalInALegacyFileIsRefused()
    {
        var pickle = new PickleWriter().Global("os", "system").Mark().Str("echo hi").Tuple().Reduce().Stop();
        File.WriteAllBytes(dir.File("evil.pth.tar"), PickleWriter.LegacyFile(pickle, []));
        Fails(() => CheckpointOpener.Open(dir.File("evil.pth.tar")), dir.File("evil.pth.tar"), "'os.system'", "refusing to load it");
    }

    [Fact]
    public void SelfReferentialMetadataIsRefused()
    {
        // {"w": tensor, "loop": L} where L = [L]: a cycle only a hostile file holds.
        var pickle = new PickleWriter().EmptyDict().Mark()
            .Str("w").Tensor("FloatStorage", "0", 2, 0, [2], [1])
            .Str("loop").EmptyList().Op('q', 200).Op('h', 200).Op('a')
            .SetItems().Stop();
        WriteTorchZip(dir.File("loop.pt"), pickle, new Dictionary<string, byte[]> { ["0"] = new byte[8] });
        Fails(() => new TorchPickleFile(dir.File("loop.pt")), dir.File("loop.pt"), "'loop");
    }

    [Fact]
    public void DeeplyNestedMetadataIsRefused()
    {
        // 100000 lists, each inside the one before: built by pushing them all, then appending each to its parent.
        var pickle = new PickleWriter().EmptyDict().Str("deep");
        for (int i = 0; i < 100_000; i++)
            pickle.EmptyList();
        for (int i = 1; i < 100_000; i++)
            pickle.Op('a');
        WriteTorchZip(dir.File("deep.pt"), pickle.Op('s').Stop());
        Fails(() => new TorchPickleFile(dir.File("deep.pt")), dir.File("deep.pt"), "'deep");
    }

    // ---- legacy files

    private string Legacy(byte[] pickle, IEnumerable<(string, long, byte[])> storages, bool littleEndian = true, long protocol = 1001)
    {
        string path = dir.File("legacy.pth.tar");
        File.WriteAllBytes(path, PickleWriter.LegacyFile(pickle, storages, littleEndian, protocol));
        return path;
    }

    private static byte[] LegacyStateDict() => new PickleWriter().EmptyDict().Mark()
        .Str("a").Tensor("FloatStorage", "10", 2, 0, [2], [1], legacy: true)
        .Str("b").Tensor("HalfStorage", "20", 3, 1, [2], [1], legacy: true)
        .SetItems().Stop();

    private static readonly float[] LegacyA = [1.5f, -2f];

    private static readonly float[] LegacyB = [1f, 2f, 3f];

    [Fact]
    public void HandMadeLegacyFileReads()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(LegacyA);
        var b = torch.tensor(LegacyB).to(torch.ScalarType.Float16);
        string path = Legacy(LegacyStateDict(), [("10", 2, [.. a.bytes]), ("20", 3, [.. b.bytes])]);
        using var file = CheckpointOpener.Open(path);
        var read = ReadAll(file);
        AssertBitwiseEqual(a, read["a"]);
        AssertBitwiseEqual(b.narrow(0, 1, 2), read["b"]);
    }

    [Fact]
    public void TruncatedLegacyFilesNameTheStorage()
    {
        var bytes = File.ReadAllBytes(TestSupport.RepoPaths.Fixture("jukebox-tiny", "vqvae.pth.tar"));
        string path = dir.File("vqvae.pth.tar");
        File.WriteAllBytes(path, bytes[..^1]);
        Fails(() => new TorchPickleFile(path, "model"), path, "is truncated: storage '", $"but the file ends at byte {bytes.Length - 1}");
        // Cut among the storages, then inside the object pickle, then inside the magic number.
        File.WriteAllBytes(path, bytes[..^50_000]);
        Fails(() => new TorchPickleFile(path, "model"), path, "is truncated");
        File.WriteAllBytes(path, bytes[..5000]);
        Fails(() => new TorchPickleFile(path, "model"), path, "runs past the end of the pickle");
        File.WriteAllBytes(path, bytes[..4]);
        Fails(() => CheckpointOpener.Open(path), path, "is truncated");
    }

    [Fact]
    public void LegacyHeaderPicklesAreChecked()
    {
        var storages = new (string, long, byte[])[] { ("10", 2, new byte[8]), ("20", 3, new byte[6]) };
        string path = Legacy(LegacyStateDict(), storages, protocol: 1000);
        Fails(() => new TorchPickleFile(path), path, "has a legacy protocol version other than 1001");
        path = Legacy(LegacyStateDict(), storages, littleEndian: false);
        Fails(() => new TorchPickleFile(path), path, "was saved on a big-endian machine");
        var bytes = PickleWriter.LegacyFile(LegacyStateDict(), storages);
        bytes[13] ^= 1; // inside the magic number, past the 4 bytes that identify the format
        File.WriteAllBytes(path, bytes);
        Fails(() => CheckpointOpener.Open(path), path, "does not begin with torch's legacy magic number");
    }

    [Fact]
    public void LegacyStorageListMustMatchTheTensors()
    {
        string path = Legacy(LegacyStateDict(), [("10", 2, new byte[8]), ("20", 4, new byte[8])]);
        Fails(() => new TorchPickleFile(path), path, "storage '20' at byte", "holds 4 elements, but its tensors were saved with 3");
        path = Legacy(LegacyStateDict(), [("10", 2, new byte[8])]);
        Fails(() => new TorchPickleFile(path), path, "the legacy storage list lacks 1 storages that tensors use (20)");
        path = Legacy(LegacyStateDict(), [("10", 2, new byte[8]), ("20", 3, new byte[6]), ("30", 1, new byte[4])]);
        Fails(() => new TorchPickleFile(path), path, "the legacy storage list names '30', which no tensor in the file uses");
        path = Legacy(LegacyStateDict(), [("10", 2, new byte[8]), ("10", 2, new byte[8]), ("20", 3, new byte[6])]);
        Fails(() => new TorchPickleFile(path), path, "names storage '10' twice");
    }

    [Fact]
    public void LegacyStorageViewsAreRefused()
    {
        var pickle = new PickleWriter().EmptyDict().Mark().Str("a")
            .Global("torch._utils", "_rebuild_tensor_v2").Mark()
            .Mark().Str("storage").Global("torch", "FloatStorage").Str("10").Str("cpu").Int(2)
            .Mark().Str("9").Int(0).Int(8).Tuple().Tuple().Op('Q')
            .Int(0).Ints([2]).Ints([1]).False().Tuple().Reduce()
            .SetItems().Stop();
        string path = Legacy(pickle, [("10", 2, new byte[8])]);
        Fails(() => new TorchPickleFile(path), path, "storage '10' is a view into another storage");
    }

    [Fact]
    public void TextThatLooksLikeNoFormatIsRefused()
    {
        File.WriteAllText(dir.File("notes.pt"), "hello, this is not a checkpoint\n", Encoding.ASCII);
        Fails(() => new TorchPickleFile(dir.File("notes.pt")), dir.File("notes.pt"), "is not a torch.save file");
        // Opened by content, the same file is taken for safetensors, whose header length it fails.
        Fails(() => CheckpointOpener.Open(dir.File("notes.pt")), dir.File("notes.pt"), "is not a valid safetensors file");
    }
}
