using LLark.Checkpoints;
using TorchSharp;
using static LLark.Tests.Checkpoints.CheckpointFixtures;

namespace LLark.Tests.Checkpoints;

/// <summary>Shard indexes checked against their shards: every mismatch fails on open, naming the index, shard and tensors.</summary>
public sealed class ShardedTensorSourceTests : IDisposable
{
    private const string First = "model-00001-of-00002.safetensors";
    private const string Second = "model-00002-of-00002.safetensors";

    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    private string Index => dir.File("model.safetensors.index.json");

    /// <summary>Copies the fp32 gqa shards and writes an index with the given weight_map entries.</summary>
    private void CopyShards()
    {
        File.Copy(LlamaTiny($"llama-gqa-fp32-sharded/{First}"), dir.File(First));
        File.Copy(LlamaTiny($"llama-gqa-fp32-sharded/{Second}"), dir.File(Second));
    }

    private static Dictionary<string, string> WeightMap()
    {
        using var index = new ShardedTensorSource(GqaFp32Index);
        return index.Entries.Values.ToDictionary(e => e.Name, e => Path.GetFileName(e.File));
    }

    private void WriteIndex(IReadOnlyDictionary<string, string> weightMap) =>
        File.WriteAllText(Index, System.Text.Json.JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = weightMap }));

    private static CheckpointException Fails(string index, params string[] expected)
    {
        var e = Assert.Throws<CheckpointException>(() => new ShardedTensorSource(index).Dispose());
        foreach (string part in expected)
            Assert.Contains(part, e.Message, StringComparison.Ordinal);
        return e;
    }

    [Fact]
    public void EntriesFollowShardThenFileOrder()
    {
        using var index = new ShardedTensorSource(GqaFp32Index);
        Assert.Equal(30, index.Entries.Count);
        Assert.Equal(GqaFp32Index, index.IndexPath);
        var files = index.Entries.Values.Select(e => Path.GetFileName(e.File)).ToList();
        Assert.Equal(files.Order(StringComparer.Ordinal), files);
        Assert.Equal("model.embed_tokens.weight", index.Entries.Keys.First());
        Assert.Equal("lm_head.weight", index.Entries.Keys.Last());
        using var first = new SafetensorsFile(LlamaTiny($"llama-gqa-fp32-sharded/{First}"));
        Assert.Equal(first.Entries.Keys, index.Entries.Keys.Take(first.Entries.Count));
    }

    [Fact]
    public void UnknownTensorIsNamed()
    {
        using var index = new ShardedTensorSource(GqaFp32Index);
        var e = Assert.Throws<CheckpointException>(() => index.ReadInto("model.nope", torch.empty(1)));
        Assert.Equal($"{GqaFp32Index} maps no shard to tensor 'model.nope'.", e.Message);
    }

    [Fact]
    public void MissingShardIsNamed()
    {
        File.Copy(LlamaTiny($"llama-gqa-fp32-sharded/{First}"), dir.File(First));
        WriteIndex(WeightMap());
        Fails(Index, Index, $"names shard files that do not exist: {Second}.");
    }

    [Fact]
    public void TensorMappedToAShardThatLacksItIsNamed()
    {
        CopyShards();
        var map = WeightMap();
        map["model.norm.weight"] = First; // it lives in the second shard
        WriteIndex(map);
        var e = Fails(Index, $"Shard {First} does not match {Index}", "the index assigns it 1 tensors it lacks (model.norm.weight)");
        // The second shard fails the same check the other way round, but the first shard is checked first.
        Assert.DoesNotContain(Second, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TensorTheIndexDoesNotListIsNamed()
    {
        CopyShards();
        var map = WeightMap();
        map.Remove("lm_head.weight");
        WriteIndex(map);
        Fails(Index, $"Shard {Second} does not match {Index}", "it holds 1 tensors the index assigns elsewhere or not at all (lm_head.weight)");
    }

    [Fact]
    public void TensorNotInAnyShardIsNamed()
    {
        CopyShards();
        var map = WeightMap();
        map["model.layers.3.mlp.up_proj.weight"] = Second;
        WriteIndex(map);
        Fails(Index, $"Shard {Second} does not match", "1 tensors it lacks (model.layers.3.mlp.up_proj.weight)");
    }

    [Fact]
    public void ManyMismatchesAreSummarized()
    {
        CopyShards();
        // Everything assigned to the first shard: it lacks the second shard's 11 tensors, listed in full.
        var map = WeightMap().ToDictionary(p => p.Key, p => First);
        WriteIndex(map);
        var e = Fails(Index, "the index assigns it 11 tensors it lacks (lm_head.weight, model.layers.2.input_layernorm.weight,");
        Assert.DoesNotContain("more", e.Message, StringComparison.Ordinal);
        // Past 20 names, the rest are counted.
        for (int i = 0; i < 25; i++)
            map[$"extra.{i:D2}"] = First;
        WriteIndex(map);
        Fails(Index, "the index assigns it 36 tensors it lacks (extra.00, extra.01,", ", and 16 more)");
    }

    [Theory]
    [InlineData("../model-00001-of-00002.safetensors")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/model.safetensors")]
    [InlineData("..")]
    [InlineData("")]
    public void ShardsOutsideTheIndexFolderAreRefused(string file)
    {
        CopyShards();
        var map = WeightMap();
        map["lm_head.weight"] = file;
        WriteIndex(map);
        Fails(Index, Index, $"maps tensor 'lm_head.weight' to '{file}', which is not a file name beside the index");
    }

    [Theory]
    [InlineData("{", "is not valid JSON")]
    [InlineData("[]", "has no weight_map object")]
    [InlineData("""{"metadata": {}}""", "has no weight_map object")]
    [InlineData("""{"weight_map": []}""", "has no weight_map object")]
    [InlineData("""{"weight_map": {"w": 3}}""", "maps tensor 'w' to '3', which is not a file name beside the index")]
    [InlineData("""{"weight_map": {"w": null}}""", "maps tensor 'w' to '', which is not a file name beside the index")]
    public void MalformedIndexesAreRefused(string json, string problem)
    {
        File.WriteAllText(Index, json);
        Fails(Index, Index, problem);
    }

    [Fact]
    public void IndexThatIsNotUtf8IsRefused()
    {
        File.WriteAllBytes(Index, [.. "{\"weight_map\": {\"caf"u8, 0xE9, .. "\": \"a.safetensors\"}}"u8]);
        Fails(Index, Index, "is not valid UTF-8");
    }

    [Fact]
    public void EmptyWeightMapIsAnEmptyCheckpoint()
    {
        File.WriteAllText(Index, """{"weight_map": {}}""");
        using var index = new ShardedTensorSource(Index);
        Assert.Empty(index.Entries);
    }

    [Fact]
    public void CorruptShardIsNamed()
    {
        CopyShards();
        WriteIndex(WeightMap());
        var bytes = File.ReadAllBytes(dir.File(Second));
        File.WriteAllBytes(dir.File(Second), bytes[..^4]);
        Fails(Index, dir.File(Second), "tensor 'lm_head.weight'", "(truncated or corrupt file)");
    }

    [Theory]
    [InlineData("model.safetensors.index.json")] // itself
    [InlineData("other.index.json")]             // an index that names this one back
    [InlineData("model.safetensors.INDEX.JSON")] // another spelling of an index
    public void IndexThatNamesAnIndexAsAShardIsRefused(string shard)
    {
        File.WriteAllText(dir.File("other.index.json"), """{"weight_map": {"w": "model.safetensors.index.json"}}""");
        File.WriteAllText(dir.File("model.safetensors.INDEX.JSON"), """{"weight_map": {}}""");
        WriteIndex(new Dictionary<string, string> { ["w"] = shard });
        Fails(Index, Index, $"names '{shard}' as a shard, but it is an index");
    }

    [Fact]
    public void ShardsMayMixSafetensorsAndTorchFiles()
    {
        using var scope = torch.NewDisposeScope();
        // Two shards: the llama-tiny bf16 safetensors (30 tensors) and one torch zip holding one extra tensor.
        File.Copy(GqaBf16, dir.File("a.safetensors"));
        WriteTorchZip(dir.File("b.bin"), PickleWriter.FloatStateDict(("extra", [2])), new Dictionary<string, byte[]> { ["0"] = [.. torch.tensor(Two).bytes] });
        using (var bf16 = new SafetensorsFile(GqaBf16))
        {
            var map = bf16.Entries.Keys.ToDictionary(n => n, _ => "a.safetensors");
            map["extra"] = "b.bin";
            WriteIndex(map);
        }
        using var index = new ShardedTensorSource(Index);
        Assert.Equal(31, index.Entries.Count);
        Assert.Equal(StoredDType.F32, index.Entries["extra"].DType);
        var extra = torch.empty(2);
        index.ReadInto("extra", extra);
        Assert.Equal(Two, extra.data<float>().ToArray());
    }

    private static readonly float[] Two = [3f, 4f];
}
