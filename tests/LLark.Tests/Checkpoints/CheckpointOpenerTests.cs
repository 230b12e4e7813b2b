using LLark.Checkpoints;
using TorchSharp;
using static LLark.Tests.Checkpoints.CheckpointFixtures;

namespace LLark.Tests.Checkpoints;

/// <summary>Which reader a path gets: directories by the Hugging Face file names, files by their content.</summary>
public sealed class CheckpointOpenerTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    private static string Fp16Bin => CheckpointFixtures.Checkpoints("llama-gqa-bin-fp16/pytorch_model.bin");

    [Theory]
    [InlineData("llama-tiny/llama-gqa-bf16", typeof(SafetensorsFile))]
    [InlineData("llama-tiny/llama-gqa-fp32-sharded", typeof(ShardedTensorSource))]
    [InlineData("checkpoints/llama-gqa-bin-fp16", typeof(TorchPickleFile))]
    [InlineData("checkpoints/llama-gqa-bin-bf16-sharded", typeof(ShardedTensorSource))]
    public void FixtureDirectoriesOpenWithTheirReader(string folder, Type reader)
    {
        using var source = CheckpointOpener.Open(Path.Combine(RepoRoot, "tests", "fixtures", folder));
        Assert.IsType(reader, source);
        Assert.InRange(source.Entries.Count, 30, 33);
    }

    [Fact]
    public void SafetensorsArePreferredInADirectory()
    {
        File.Copy(Fp16Bin, dir.File("pytorch_model.bin"));
        using (var bin = CheckpointOpener.Open(dir.Path))
            Assert.IsType<TorchPickleFile>(bin);
        File.Copy(GqaBf16, dir.File("model.safetensors"));
        using var source = CheckpointOpener.Open(dir.Path);
        var file = Assert.IsType<SafetensorsFile>(source);
        Assert.Equal(dir.File("model.safetensors"), file.Path);
    }

    [Theory]
    [InlineData("weights.bin")]
    [InlineData("pytorch_model.bin")]
    [InlineData("model")]
    public void SafetensorsAreKnownByContentNotName(string name)
    {
        File.Copy(GqaBf16, dir.File(name));
        using var source = CheckpointOpener.Open(dir.File(name));
        Assert.IsType<SafetensorsFile>(source);
    }

    [Theory]
    [InlineData("model.safetensors", "checkpoints/llama-gqa-bin-fp16/pytorch_model.bin")]
    [InlineData("model.safetensors", "jukebox-tiny/vqvae.pth.tar")]
    [InlineData("weights", "jukebox-tiny/vqvae.zip.pth")]
    public void TorchFilesAreKnownByContentNotName(string name, string fixture)
    {
        File.Copy(TestSupport.RepoPaths.Fixture(fixture.Split('/')), dir.File(name));
        using var source = CheckpointOpener.Open(dir.File(name));
        Assert.IsType<TorchPickleFile>(source);
    }

    [Theory]
    [InlineData(123UL)]  // the header length's first byte is '{'
    [InlineData(640UL)]  // its first two bytes, 80 02, are how a protocol-2 pickle starts
    [InlineData(0x4B50UL)] // its first two bytes are "PK"
    public void SafetensorsWhoseLengthLooksLikeAnotherFormatStillOpen(ulong headerLength)
    {
        using var scope = torch.NewDisposeScope();
        string json = """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""";
        string path = dir.File("odd.safetensors");
        WriteSafetensors(path, json.PadRight((int)headerLength), [.. BitConverter.GetBytes(1f), .. BitConverter.GetBytes(-1f)]);
        using var source = CheckpointOpener.Open(path);
        Assert.IsType<SafetensorsFile>(source);
        var w = torch.empty(2);
        source.ReadInto("w", w);
        Assert.Equal(Signs, w.data<float>().ToArray());
    }

    private static readonly float[] Signs = [1f, -1f];

    [Fact]
    public void JsonFilesAreIndexes()
    {
        using var source = CheckpointOpener.Open(GqaFp32Index);
        Assert.IsType<ShardedTensorSource>(source);
        File.Copy(GqaFp32Index, dir.File("INDEX.JSON"));
        var e = Assert.Throws<CheckpointException>(() => CheckpointOpener.Open(dir.File("INDEX.JSON")));
        Assert.Contains("names shard files that do not exist", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TorchOptionsReachTheTorchReader()
    {
        using var source = CheckpointOpener.Open(CheckpointFixtures.Checkpoints("layout.zip.pt"), stateDictKey: "model", stripModulePrefix: true);
        Assert.Equal("transposed", source.Entries.Keys.First());
        // Safetensors ignore them.
        using var safetensors = CheckpointOpener.Open(GqaBf16, stateDictKey: "model", stripModulePrefix: true);
        Assert.Equal(30, safetensors.Entries.Count);
    }

    [Fact]
    public void EmptyPathIsAnArgumentError()
    {
        Assert.Throws<ArgumentException>(() => CheckpointOpener.Open(""));
        Assert.Throws<ArgumentNullException>(() => CheckpointOpener.Open(null!));
    }
}
