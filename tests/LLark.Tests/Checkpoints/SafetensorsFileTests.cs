using LLark.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;
using static LLark.Tests.Checkpoints.CheckpointFixtures;

namespace LLark.Tests.Checkpoints;

public class SafetensorsFileTests
{
    [Fact]
    public void Bf16FileHoldsTheSameValuesAsTheFp32Shards()
    {
        using var scope = torch.NewDisposeScope();
        using var bf16 = new SafetensorsFile(GqaBf16);
        using var fp32 = new ShardedTensorSource(GqaFp32Index);

        Assert.Equal(30, bf16.Entries.Count);
        Assert.Equal(fp32.Entries.Keys.Order(), bf16.Entries.Keys.Order());
        Assert.All(bf16.Entries.Values, e => Assert.Equal(StoredDType.BF16, e.DType));
        var widened = ReadAll(bf16, torch.ScalarType.Float32);
        var reference = ReadAll(fp32);
        foreach (var (name, tensor) in reference)
            AssertBitwiseEqual(tensor, widened[name], name);
    }

    [Fact]
    public void SameDtypeReadsAreBitwiseAndNarrowingMatchesTorch()
    {
        using var scope = torch.NewDisposeScope();
        using var bf16 = new SafetensorsFile(GqaBf16);
        using var fp32 = new ShardedTensorSource(GqaFp32Index);

        var direct = ReadAll(bf16);
        var narrowed = ReadAll(fp32, torch.ScalarType.BFloat16);
        foreach (var (name, tensor) in direct)
        {
            Assert.Equal(torch.ScalarType.BFloat16, tensor.dtype);
            AssertBitwiseEqual(tensor, narrowed[name], name);
        }
    }

    [Fact]
    public void F16WideningIsExactIncludingSubnormals()
    {
        using var scope = torch.NewDisposeScope();
        using var file = new SafetensorsFile(MhaFp16);

        var half = ReadAll(file);
        var widened = ReadAll(file, torch.ScalarType.Float32);
        long subnormals = 0;
        foreach (var (name, tensor) in half)
        {
            var expected = tensor.to(torch.ScalarType.Float32);
            AssertBitwiseEqual(expected, widened[name], name);
            subnormals += (expected.abs() < 6.103515625e-5f).logical_and(expected != 0).sum().item<long>();
        }
        Assert.Equal(1285, subnormals); // the fixture README's count
    }

    [Fact]
    public void TensorsLargerThanOneChunkAreReadWhole()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDirectory();
        // 9M halves and 5M floats: both cross the 16 MiB chunk boundary, one staged and one read directly.
        // Scalars held in locals: a temporary one can be finalized during the native call (see KeptScalars).
        using Scalar period = 4093.0f.ToScalar(), centre = 2046.0f.ToScalar(), scale = 1024.0f.ToScalar(), half = 0.5f.ToScalar();
        var halves = torch.arange(9_000_000, dtype: torch.ScalarType.Float32).remainder(period).sub(centre).to(torch.ScalarType.Float16).div(scale);
        var floats = torch.arange(5_000_000, dtype: torch.ScalarType.Float32).mul(half);
        long halfBytes = 18_000_000, floatBytes = 20_000_000;
        WriteSafetensors(dir.File("big.safetensors"),
            $$$"""{"h":{"dtype":"F16","shape":[3000,3000],"data_offsets":[0,{{{halfBytes}}}]},"f":{"dtype":"F32","shape":[5000000],"data_offsets":[{{{halfBytes}}},{{{halfBytes + floatBytes}}}]}}""",
            [.. halves.bytes, .. floats.bytes]);
        using var file = new SafetensorsFile(dir.File("big.safetensors"));

        var h = torch.empty([3000, 3000], dtype: torch.ScalarType.Float32);
        file.ReadInto("h", h);
        var f = torch.empty([5000000], dtype: torch.ScalarType.Float32);
        file.ReadInto("f", f);

        AssertBitwiseEqual(halves.to(torch.ScalarType.Float32).reshape(3000, 3000), h);
        AssertBitwiseEqual(floats, f);
    }

    [Fact]
    public void EntriesAreInFileOrderWithMetadata()
    {
        using var file = new SafetensorsFile(GqaBf16);

        Assert.Equal("model.embed_tokens.weight", file.Entries.Keys.First());
        Assert.Equal("lm_head.weight", file.Entries.Keys.Last());
        Assert.Equal("pt", file.Metadata["format"]);
        var embed = file.Entries["model.embed_tokens.weight"];
        Assert.Equal([1024L, 128L], embed.Shape);
        Assert.Equal(GqaBf16, embed.File);
    }

    [Fact]
    public void EveryDtypeIsRead()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDirectory();
        var cases = new (string Name, torch.Tensor Value)[]
        {
            ("F64", torch.tensor([1.5, -2.25])),
            ("I64", torch.tensor([-(1L << 40), 7L])),
            ("I32", torch.tensor([-3, 4])),
            ("I16", torch.tensor([(short)-300, (short)300])),
            ("I8", torch.tensor([(sbyte)-7, (sbyte)7])),
            ("U8", torch.tensor([(byte)0, (byte)255])),
            ("BOOL", torch.tensor([true, false])),
        };
        long offset = 0;
        var header = new List<string>();
        var data = new List<byte>();
        foreach (var (name, value) in cases)
        {
            var bytes = value.bytes.ToArray();
            header.Add($$"""  "{{name}}": {"dtype":"{{name}}","shape":[2],"data_offsets":[{{offset}},{{offset + bytes.Length}}]}""");
            data.AddRange(bytes);
            offset += bytes.Length;
        }
        WriteSafetensors(dir.File("all.safetensors"), "{" + string.Join(",", header) + "}", [.. data]);
        using var file = new SafetensorsFile(dir.File("all.safetensors"));

        foreach (var (name, value) in cases)
        {
            var read = torch.empty([2], dtype: value.dtype);
            file.ReadInto(name, read);
            AssertBitwiseEqual(value, read, name);
            var asDouble = torch.empty([2], dtype: torch.ScalarType.Float64);
            file.ReadInto(name, asDouble);
            AssertBitwiseEqual(value.to(torch.ScalarType.Float64), asDouble, name);
        }
    }
}
