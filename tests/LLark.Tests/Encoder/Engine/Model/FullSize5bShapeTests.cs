using LLark.Encoder.Engine.Model;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace LLark.Tests.Encoder.Engine.Model;

/// <summary>
/// The real 5b encoder built on the meta device: every tensor name and shape the released <c>vqvae.pth.tar</c>
/// and <c>prior_level_2.pth.tar</c> hold for the parts the embedding uses, and nothing allocated.
/// </summary>
public sealed class FullSize5bShapeTests(ITestOutputHelper output)
{
    /// <summary>encoders.2 and bottleneck.level_blocks.2.k of the 5b VQ-VAE: width 32, depth 4, emb 64, 2048 codes.</summary>
    private static Dictionary<string, long[]> VqvaeShapes()
    {
        var shapes = new Dictionary<string, long[]> { ["bottleneck.level_blocks.2.k"] = [2048, 64] };
        int[] downs = [3, 2, 2];
        for (int b = 0; b < 3; b++)
        {
            string block = $"encoders.2.level_blocks.{b}.model.";
            for (int j = 0; j < downs[b]; j++)
            {
                shapes[$"{block}{j}.0.weight"] = [32, j > 0 ? 32 : b == 0 ? 1 : 64, 4];
                shapes[$"{block}{j}.0.bias"] = [32];
                for (int r = 0; r < 4; r++)
                {
                    shapes[$"{block}{j}.1.model.{r}.model.1.weight"] = [32, 32, 3];
                    shapes[$"{block}{j}.1.model.{r}.model.1.bias"] = [32];
                    shapes[$"{block}{j}.1.model.{r}.model.3.weight"] = [32, 32, 1];
                    shapes[$"{block}{j}.1.model.{r}.model.3.bias"] = [32];
                }
            }
            shapes[$"{block}{downs[b]}.weight"] = [64, 32, 3];
            shapes[$"{block}{downs[b]}.bias"] = [64];
        }
        return shapes;
    }

    /// <summary>The 5b top prior's label embeddings, code and position embeddings and first <paramref name="blocks"/> blocks.</summary>
    private static Dictionary<string, long[]> PriorShapes(int blocks)
    {
        var shapes = new Dictionary<string, long[]>
        {
            ["y_emb.bow_genre_emb.emb.weight"] = [120, 4800],
            ["y_emb.artist_emb.emb.weight"] = [4111, 4800],
            ["y_emb.total_length_emb.emb.weight"] = [128, 4800],
            ["y_emb.absolute_pos_emb.emb.weight"] = [128, 4800],
            ["y_emb.relative_pos_emb.emb.weight"] = [128, 4800],
            ["prior.x_emb.weight"] = [2048, 4800],
            ["prior.pos_emb.pos_emb"] = [8192, 4800],
        };
        for (int i = 0; i < blocks; i++)
        {
            string p = $"prior.transformer._attn_mods.{i}.";
            shapes[p + "attn.c_attn.w"] = [4800, 3600];
            shapes[p + "attn.c_attn.b"] = [3600];
            shapes[p + "attn.c_proj.w"] = [1200, 4800];
            shapes[p + "attn.c_proj.b"] = [4800];
            shapes[p + "mlp.c_fc.w"] = [4800, 4800];
            shapes[p + "mlp.c_fc.b"] = [4800];
            shapes[p + "mlp.c_proj.w"] = [4800, 4800];
            shapes[p + "mlp.c_proj.b"] = [4800];
            foreach (string ln in new[] { "ln_0", "ln_1" })
            {
                shapes[p + ln + ".weight"] = [4800];
                shapes[p + ln + ".bias"] = [4800];
            }
        }
        return shapes;
    }

    private static void AssertShapes(Dictionary<string, long[]> expected, IReadOnlyDictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach ((string name, long[] shape) in expected)
        {
            Assert.True(shape.SequenceEqual(actual[name].shape), $"{name}: [{string.Join(", ", actual[name].shape)}]");
            Assert.Equal(DeviceType.META, actual[name].device_type);
        }
    }

    [Fact]
    public void The5bEncoderHasTheRealTensorsWithoutAllocating()
    {
        JukeboxEncoderConfig config = JukeboxEncoderConfig.Preset5b;
        Assert.Equal((128, 1_048_576, 64, 1200, 150), (config.Vqvae.HopLength, config.ContextSamples, config.Prior.BlockCtx, config.Prior.AttnWidth, config.Prior.HeadDim));
        Assert.Equal(344.53125, config.TokensPerSecond);
        long residentBefore = Environment.WorkingSet;
        using var vqvae = new VqvaeTopEncoder(config.Vqvae, META);
        using var prior = new PriorPrefix(config, ScalarType.Float16, META);
        AssertShapes(VqvaeShapes(), vqvae.CheckpointParameters());
        AssertShapes(PriorShapes(36), prior.CheckpointParameters());
        Assert.Equal(299_296, vqvae.CheckpointParameters().Values.Sum(p => p.NumberOfElements));
        Assert.Equal(2_560_963_200, prior.CheckpointParameters().Values.Sum(p => p.NumberOfElements));
        Assert.Equal(299_296, MemoryPlan.VqvaeParameters(config.Vqvae));
        // About 10 GB of weights were never touched.
        Assert.True(Environment.WorkingSet - residentBefore < 200L << 20, "the meta model allocated memory");
    }

    [Fact]
    public void TheFullPriorDepthHasEveryBlock()
    {
        using var prior = new PriorPrefix(JukeboxEncoderConfig.Preset5b with { Layers = 72 }, ScalarType.Float32, META);
        AssertShapes(PriorShapes(72), prior.CheckpointParameters());
        Assert.Equal([AttentionKind.Block, AttentionKind.TransposeBlock, AttentionKind.PreviousBlock], prior.Blocks.Take(3).Select(b => b.Kind));
        Assert.Equal(AttentionKind.PreviousBlock, prior.Blocks[35].Kind);
    }

    [Fact]
    public void TheMemoryOfTheReal5bEncoderIsPlannedFromShapes()
    {
        JukeboxEncoderConfig config = JukeboxEncoderConfig.Preset5b;
        MemoryPlan fp32 = MemoryPlan.Estimate(config, ScalarType.Float32);
        MemoryPlan bf16 = MemoryPlan.Estimate(config, ScalarType.BFloat16);
        output.WriteLine($"fp32 weights {fp32.WeightBytes / 1e9:F2} GB, peak activations {fp32.PeakActivationBytes / 1e9:F2} GB");
        output.WriteLine($"bf16 weights {bf16.WeightBytes / 1e9:F2} GB, peak activations {bf16.PeakActivationBytes / 1e9:F2} GB");
        Assert.Equal(4L * (2_560_963_200 + 299_296), fp32.WeightBytes);
        Assert.Equal(2L * 36 * 69_120_000, bf16.MatrixBytes);
        // Linear in length: twice the tokens, twice the attention scores (a dense score matrix would quadruple).
        MemoryPlan half = MemoryPlan.Estimate(config, ScalarType.Float32, 4096);
        Assert.Equal(2 * half.ScoreBytesPerBlock, fp32.ScoreBytesPerBlock);
        Assert.True(fp32.ScoreBytesPerBlock < 4L * 8 * 8192 * 8192 / 16);
    }
}
