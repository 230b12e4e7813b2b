using LLark.Checkpoints;
using LLark.Encoder.Engine.Model;
using LLark.Tests.Checkpoints;
using Xunit;

namespace LLark.Tests.Encoder.Engine.Model;

/// <summary>The random-weight checkpoints <c>llark-bench embed --shape</c> writes load and run like converted ones.</summary>
public sealed class RandomJukeboxCheckpointTests
{
    [Fact]
    public void MidShapeIsThe5bStructureAtWidth1024With12Blocks()
    {
        JukeboxEncoderConfig mid = RandomJukeboxCheckpoint.Shape("mid");
        mid.Validate();
        Assert.Equal((1024, 12, 12, 8, 8192, 64), (mid.Prior.Width, mid.Prior.Depth, mid.Layers, mid.Prior.Heads, mid.Prior.NCtx, mid.Prior.BlockCtx));
        Assert.Equal(JukeboxEncoderConfig.Preset5b.Vqvae, mid.Vqvae);
        Assert.Throws<EncoderConfigException>(() => RandomJukeboxCheckpoint.Shape("huge"));
    }

    [Fact]
    public void WrittenFolderLoadsWithRealNamesAndDTypesAndEmbeds()
    {
        JukeboxEncoderConfig config = JukeboxTiny.Config(layers: 3);
        using var dir = new TempDirectory();
        RandomJukeboxCheckpoint.Write(config, dir.Path, seed: 7);

        using (ITensorSource prior = JukeboxEncoderLoader.Open(dir.File(JukeboxEncoderLoader.ConvertedPriorFileName)))
        {
            Assert.Equal(StoredDType.F16, prior.Entries["prior.transformer._attn_mods.0.attn.c_attn.w"].DType);
            Assert.Equal(StoredDType.F32, prior.Entries["prior.x_emb.weight"].DType);
        }
        using JukeboxEncoder encoder = JukeboxEncoderLoader.Load(dir.Path);
        Assert.Equal(config, encoder.Config with { Vqvae = config.Vqvae, Prior = config.Prior });
        AudioEmbedding embedding = encoder.Embed(JukeboxTiny.NormalizedAudio());
        Assert.Equal((106, 48), (embedding.Frames, embedding.Width));
        Assert.All(embedding.Values, v => Assert.True(float.IsFinite(v)));
    }
}
