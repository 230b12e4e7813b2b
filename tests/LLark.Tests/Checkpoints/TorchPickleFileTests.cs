using System.Numerics;
using LLark.Checkpoints;
using TorchSharp;
using static LLark.Tests.Checkpoints.CheckpointFixtures;

namespace LLark.Tests.Checkpoints;

/// <summary>
/// torch.save files against the safetensors copies of the same weights: the llama-tiny gqa weights saved by
/// transformers as <c>pytorch_model.bin</c>, the Jukebox fixtures in the zip and the legacy format, and
/// <c>layout.zip.pt</c>, which holds views, shared storages and every dtype.
/// </summary>
public class TorchPickleFileTests
{
    private static string Fp16Bin => CheckpointFixtures.Checkpoints("llama-gqa-bin-fp16/pytorch_model.bin");

    private static string Bf16BinIndex => CheckpointFixtures.Checkpoints("llama-gqa-bin-bf16-sharded/pytorch_model.bin.index.json");

    private static string Jukebox(string file) => TestSupport.RepoPaths.Fixture("jukebox-tiny", file);

    private static readonly string[] InvFreqNames =
        [.. Enumerable.Range(0, 3).Select(l => $"model.layers.{l}.self_attn.rotary_emb.inv_freq")];

    [Fact]
    public void Fp16BinHoldsTheBf16WeightsRoundedToHalfPlusInvFreqBuffers()
    {
        using var scope = torch.NewDisposeScope();
        using var bin = new TorchPickleFile(Fp16Bin);
        using var bf16 = new SafetensorsFile(GqaBf16);

        Assert.Equal(33, bin.Entries.Count);
        Assert.Equal(bf16.Entries.Keys.Concat(InvFreqNames).Order(), bin.Entries.Keys.Order());
        Assert.Empty(bin.Metadata);
        foreach (var entry in bin.Entries.Values)
        {
            Assert.Equal(entry.Name.EndsWith(".inv_freq", StringComparison.Ordinal) ? StoredDType.F32 : StoredDType.F16, entry.DType);
            Assert.Equal(Fp16Bin, entry.File);
            if (bf16.Entries.TryGetValue(entry.Name, out var reference))
                Assert.Equal(reference.Shape, entry.Shape);
        }

        // F16 holds every BF16 value of these weights exactly, except those below its normal range (2^-14), where
        // its subnormals keep fewer bits; torch's rounding of the BF16 weights to F16 gives the file bit for bit.
        long differing = 0;
        foreach (var (name, weights) in ReadAll(bf16))
        {
            var half = torch.empty(weights.shape, dtype: torch.ScalarType.Float16);
            bin.ReadInto(name, half);
            AssertBitwiseEqual(weights.to(torch.ScalarType.Float16), half, name);

            var widened = torch.empty(weights.shape, dtype: torch.ScalarType.Float32);
            bin.ReadInto(name, widened);
            var exact = weights.to(torch.ScalarType.Float32);
            var differs = widened.ne(exact);
            Assert.True(exact.abs().lt(Math.Pow(2, -14)).logical_or(differs.logical_not()).all().item<bool>(), $"{name} differs from BF16 at a normal F16 value");
            differing += differs.sum().item<long>();
        }
        Assert.Equal(42, differing);
    }

    [Fact]
    public void InvFreqBuffersHoldTheRopeFrequenciesOfTheConfig()
    {
        using var scope = torch.NewDisposeScope();
        using var bin = new TorchPickleFile(Fp16Bin);
        // rope_theta 500000, head_dim 16: inv_freq = 1 / theta^(arange(0, 16, 2) / 16), in float32.
        // Scalars held in locals: a temporary one can be finalized during the native call (see KeptScalars).
        using Scalar headDim = 16.0.ToScalar();
        var expected = torch.tensor(500000.0f).pow(torch.arange(0, 16, 2, dtype: torch.ScalarType.Int64).to(torch.ScalarType.Float32).div(headDim)).reciprocal();
        foreach (string name in InvFreqNames)
        {
            Assert.Equal([8L], bin.Entries[name].Shape);
            var actual = torch.empty(8, dtype: torch.ScalarType.Float32);
            bin.ReadInto(name, actual);
            Assert.True(actual.allclose(expected, rtol: 1e-6, atol: 0), $"{name}: {string.Join(", ", actual.data<float>().ToArray())}");
        }
    }

    [Fact]
    public void Bf16ShardedBinsHoldTheSafetensorsBytes()
    {
        using var scope = torch.NewDisposeScope();
        using var index = new ShardedTensorSource(Bf16BinIndex);
        using var bf16 = new SafetensorsFile(GqaBf16);

        Assert.Equal(bf16.Entries.Keys.Concat(InvFreqNames).Order(), index.Entries.Keys.Order());
        // The index assigns embed_tokens and layers 0-1 to the first shard, the rest to the second.
        string first = CheckpointFixtures.Checkpoints("llama-gqa-bin-bf16-sharded/pytorch_model-00001-of-00002.bin");
        string second = CheckpointFixtures.Checkpoints("llama-gqa-bin-bf16-sharded/pytorch_model-00002-of-00002.bin");
        Assert.Equal(first, index.Entries["model.layers.1.self_attn.rotary_emb.inv_freq"].File);
        Assert.Equal(second, index.Entries["model.layers.2.self_attn.rotary_emb.inv_freq"].File);
        Assert.Equal(second, index.Entries["lm_head.weight"].File);
        Assert.Equal(21, index.Entries.Values.Count(e => e.File == first));
        Assert.Equal(12, index.Entries.Values.Count(e => e.File == second));

        var stored = ReadAll(index);
        foreach (var (name, weights) in ReadAll(bf16))
            AssertBitwiseEqual(weights, stored[name], name);
        using var fp16 = new TorchPickleFile(Fp16Bin);
        var fp16InvFreq = ReadAll(fp16);
        foreach (string name in InvFreqNames)
            AssertBitwiseEqual(fp16InvFreq[name], stored[name], name);
    }

    [Fact]
    public void JukeboxZipHoldsTheSafetensorsTensorsUnderModel()
    {
        using var scope = torch.NewDisposeScope();
        using var zip = new TorchPickleFile(Jukebox("vqvae.zip.pth"), stateDictKey: "model");
        using var safetensors = new SafetensorsFile(Jukebox("vqvae.safetensors"));

        AssertSameTensors(safetensors, zip);
        Assert.Equal(669, zip.Entries.Count);
        AssertJukeboxMetadata(zip, lBins: 192, embWidth: 16);

        // Without the key, the file's top level holds no tensors: the state dict is metadata like the rest.
        using var whole = new TorchPickleFile(Jukebox("vqvae.zip.pth"));
        Assert.Empty(whole.Entries);
        var model = Assert.IsType<OrderedDictionary<object, object?>>(whole.Metadata["model"]);
        var k = Assert.IsType<TensorEntry>(model["bottleneck.level_blocks.2.k"]);
        Assert.Equal(StoredDType.F32, k.DType);
        Assert.Equal([192L, 16L], k.Shape);
        Assert.Equal("model.bottleneck.level_blocks.2.k", k.Name);
    }

    [Theory]
    [InlineData("vqvae", 669, 0, 192, 16)]
    [InlineData("prior_level_2", 80, 24, 512, 64)]
    public void LegacyPthTarHoldsTheSafetensorsTensors(string name, int tensors, int halves, long lBins, long embWidth)
    {
        using var scope = torch.NewDisposeScope();
        using var legacy = CheckpointOpener.Open(Jukebox(name + ".pth.tar"), stateDictKey: "model");
        using var safetensors = new SafetensorsFile(Jukebox(name + ".safetensors"));

        var file = Assert.IsType<TorchPickleFile>(legacy);
        AssertSameTensors(safetensors, file);
        Assert.Equal(tensors, file.Entries.Count);
        Assert.Equal(halves, file.Entries.Values.Count(e => e.DType == StoredDType.F16));
        Assert.All(file.Entries.Values, e => Assert.True(e.DType is StoredDType.F16 or StoredDType.F32));
        AssertJukeboxMetadata(file, lBins, embWidth);
    }

    [Fact]
    public void LegacyPriorConv1DWeightsAreF16AndWidenExactly()
    {
        using var scope = torch.NewDisposeScope();
        using var legacy = new TorchPickleFile(Jukebox("prior_level_2.pth.tar"), stateDictKey: "model");
        var halves = legacy.Entries.Values.Where(e => e.DType == StoredDType.F16).ToList();
        Assert.All(halves, e => Assert.EndsWith(".w", e.Name, StringComparison.Ordinal));
        foreach (var entry in halves)
        {
            var half = torch.empty(entry.Shape, dtype: torch.ScalarType.Float16);
            legacy.ReadInto(entry.Name, half);
            var widened = torch.empty(entry.Shape, dtype: torch.ScalarType.Float32);
            legacy.ReadInto(entry.Name, widened);
            AssertBitwiseEqual(half.to(torch.ScalarType.Float32), widened, entry.Name);
        }
    }

    [Fact]
    public void LayoutFileHoldsViewsSharedStoragesAndEveryDtype()
    {
        using var scope = torch.NewDisposeScope();
        using var file = new TorchPickleFile(CheckpointFixtures.Checkpoints("layout.zip.pt"), stateDictKey: "model", stripModulePrefix: true);

        string[] names = ["transposed", "offset_view", "shared_a", "shared_b", "scalar", "bf16", "f16_subnormal",
            "i64", "i32", "i16", "i8", "u8", "mask", "param", "empty"];
        Assert.Equal(names, file.Entries.Keys);
        var read = ReadAll(file);

        // A transpose saved as is: shape [4, 3] with strides (1, 4) over a 12-float storage holding 0..11.
        AssertBitwiseEqual(torch.arange(12, dtype: torch.ScalarType.Float32).reshape(3, 4).t(), read["transposed"]);
        // Three views of one 24-float storage holding 0..23: the whole of it, a slice at offset 5, and a
        // strided [2, 3] view from offset 6 with strides (6, 2).
        var storage = torch.arange(24, dtype: torch.ScalarType.Float32);
        AssertBitwiseEqual(storage.reshape(4, 6), read["shared_a"]);
        AssertBitwiseEqual(storage.narrow(0, 5, 6), read["offset_view"]);
        AssertBitwiseEqual(storage.as_strided([2, 3], [6, 2], 6), read["shared_b"]);
        Assert.Equal(SharedB, read["shared_b"].data<float>().ToArray());

        AssertBitwiseEqual(torch.tensor(3.5), read["scalar"]);
        Assert.Empty(file.Entries["scalar"].Shape);
        AssertBitwiseEqual(torch.tensor(new[] { 1f, -2.5f, 3.140625f, 0.00099945068359375f }).to(torch.ScalarType.BFloat16), read["bf16"]);
        // 2^-24 (the smallest F16 subnormal), -17 * 2^-24, 65504 (the largest F16), 0.
        AssertBitwiseEqual(torch.tensor(new[] { MathF.Pow(2, -24), -17 * MathF.Pow(2, -24), 65504f, 0f }).to(torch.ScalarType.Float16), read["f16_subnormal"]);
        AssertBitwiseEqual(torch.tensor(new[] { -(1L << 40), 7L }), read["i64"]);
        AssertBitwiseEqual(torch.tensor(new[] { 1, -2, 3, -4 }).reshape(2, 2), read["i32"]);
        AssertBitwiseEqual(torch.tensor(new short[] { -300, 300 }), read["i16"]);
        AssertBitwiseEqual(torch.tensor(new sbyte[] { -7, 7 }), read["i8"]);
        AssertBitwiseEqual(torch.tensor(new byte[] { 0, 255 }), read["u8"]);
        AssertBitwiseEqual(torch.tensor(Mask), read["mask"]);
        // An nn.Parameter (_rebuild_parameter) reads as its data.
        AssertBitwiseEqual(torch.full([2, 2], 0.25f), read["param"]);
        Assert.Equal([0L, 3L], file.Entries["empty"].Shape);
        Assert.Equal(0, read["empty"].numel());
    }

    [Fact]
    public void LayoutViewsConvertToOtherDtypes()
    {
        using var scope = torch.NewDisposeScope();
        using var file = new TorchPickleFile(CheckpointFixtures.Checkpoints("layout.zip.pt"), stateDictKey: "model", stripModulePrefix: true);

        var transposed = torch.empty([4, 3], dtype: torch.ScalarType.Float64);
        file.ReadInto("transposed", transposed);
        AssertBitwiseEqual(torch.arange(12, dtype: torch.ScalarType.Float64).reshape(3, 4).t(), transposed);
        var sharedB = torch.empty([2, 3], dtype: torch.ScalarType.Float16);
        file.ReadInto("shared_b", sharedB);
        AssertBitwiseEqual(torch.tensor(SharedB).reshape(2, 3).to(torch.ScalarType.Float16), sharedB);
        var offset = torch.empty([6], dtype: torch.ScalarType.Int64);
        file.ReadInto("offset_view", offset);
        Assert.Equal([5L, 6L, 7L, 8L, 9L, 10L], offset.data<long>().ToArray());
    }

    [Fact]
    public void LayoutMetadataKeepsThePythonValues()
    {
        using var file = new TorchPickleFile(CheckpointFixtures.Checkpoints("layout.zip.pt"), stateDictKey: "model");

        Assert.Equal(["hps", "step"], file.Metadata.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(3L, file.Metadata["step"]);
        var hps = Assert.IsType<OrderedDictionary<object, object?>>(file.Metadata["hps"]);
        Assert.Equal("layout", hps["name"]);
        Assert.Equal(5e-05, hps["lr"]);
        Assert.Equal(new List<object?> { 1L, 2L, 3L }, hps["sizes"]);
        Assert.Equal(new object?[] { 4L, "x" }, hps["pair"]);
        Assert.Equal(1L << 40, hps["big"]);
        Assert.Equal(-5L, hps["neg"]);
        Assert.Equal(true, hps["flag"]);
        Assert.True(hps.ContainsKey("none"));
        Assert.Null(hps["none"]);
        var nested = Assert.IsType<OrderedDictionary<object, object?>>(hps["nested"]);
        Assert.Equal(2L, nested["depth"]);
        // 1100 items: pickle writes APPENDS in batches of 1000, so the list spans two marks.
        var longList = Assert.IsType<List<object?>>(hps["long_list"]);
        Assert.Equal(Enumerable.Range(0, 1100).Select(i => (object?)(long)i), longList);
    }

    [Fact]
    public void ModulePrefixIsKeptUnlessStripped()
    {
        using var kept = new TorchPickleFile(CheckpointFixtures.Checkpoints("layout.zip.pt"), stateDictKey: "model");
        Assert.All(kept.Entries.Keys, n => Assert.StartsWith("module.", n, StringComparison.Ordinal));
        Assert.Contains("module.transposed", kept.Entries.Keys);
        using var opened = CheckpointOpener.Open(CheckpointFixtures.Checkpoints("layout.zip.pt"), stateDictKey: "model", stripModulePrefix: true);
        Assert.Contains("transposed", opened.Entries.Keys);
    }

    [Fact]
    public void BigIntegersAndTensorsOutsideTheStateDictAreMetadata()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDirectory();
        // {"w": tensor, "opt": {"m": tensor}, "big": 2^70}, in the zip format.
        var pickle = new PickleWriter().EmptyDict().Mark()
            .Str("w").Tensor("FloatStorage", "0", 2, 0, [2], [1])
            .Str("opt").EmptyDict().Mark().Str("m").Tensor("HalfStorage", "1", 3, 0, [3], [1]).SetItems()
            .Str("big").Op(0x8a, 9).Op(0, 0, 0, 0, 0, 0, 0, 0, 0x40)
            .SetItems().Stop();
        WriteTorchZip(dir.File("m.pt"), pickle, new Dictionary<string, byte[]>
        {
            ["0"] = [.. torch.tensor(OneTwo).bytes],
            ["1"] = new byte[6],
        });
        using var file = new TorchPickleFile(dir.File("m.pt"));

        Assert.Equal(["w"], file.Entries.Keys);
        Assert.Equal(BigInteger.Pow(2, 70), file.Metadata["big"]);
        var opt = Assert.IsType<OrderedDictionary<object, object?>>(file.Metadata["opt"]);
        var m = Assert.IsType<TensorEntry>(opt["m"]);
        Assert.Equal(("opt.m", StoredDType.F16), (m.Name, m.DType));
        var w = torch.empty(2);
        file.ReadInto("w", w);
        Assert.Equal(OneTwo, w.data<float>().ToArray());
    }

    private static readonly bool[] Mask = [true, false, true];

    private static readonly float[] SharedB = [6f, 8f, 10f, 12f, 14f, 16f];

    private static readonly float[] OneTwo = [1f, 2f];

    private static void AssertSameTensors(SafetensorsFile expected, TorchPickleFile actual)
    {
        Assert.Equal(expected.Entries.Keys, actual.Entries.Keys);
        var stored = ReadAll(actual);
        foreach (var (name, tensor) in ReadAll(expected))
        {
            Assert.Equal(expected.Entries[name].DType, actual.Entries[name].DType);
            AssertBitwiseEqual(tensor, stored[name], name);
        }
    }

    private static void AssertJukeboxMetadata(TorchPickleFile file, long lBins, long embWidth)
    {
        Assert.Equal(["hps", "step"], file.Metadata.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(0L, file.Metadata["step"]);
        var hps = Assert.IsType<OrderedDictionary<object, object?>>(file.Metadata["hps"]);
        Assert.Equal(lBins, hps["l_bins"]);
        Assert.Equal(embWidth, hps["emb_width"]);
    }
}
