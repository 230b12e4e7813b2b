using LLark.Checkpoints;
using LLark.Encoder.Engine.Model;
using LLark.Tests.Encoder.Engine;
using LLark.Tests.Checkpoints;
using LLark.Training.Encoder;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace LLark.Tests.Training.Encoder;

/// <summary>Making a small Jukebox from clips: codebook initialisation from encoder outputs and next-code training of the prior.</summary>
public sealed class JukeboxTrainingTests(ITestOutputHelper output)
{
    /// <summary>The tiny fixture's structure with a short context (384 codes, blocks of 64), so a training step takes milliseconds.</summary>
    private static JukeboxEncoderConfig ShortContext() => JukeboxTiny.Config(layers: 3) with
    {
        Prior = JukeboxTiny.Config().Prior with { NCtx = 384, Blocks = 6, Depth = 3 },
    };

    [Fact]
    public void CodebookFromEncoderOutputsUsesMoreCodesThanAGaussianOneOnTheFixtureClip()
    {
        using var dir = new TempDirectory();
        RandomJukeboxCheckpoint.Write(JukeboxTiny.Config(layers: 3), dir.Path, seed: 3);
        using JukeboxEncoder encoder = JukeboxEncoderLoader.Load(dir.Path);
        int bins = encoder.Config.Vqvae.CodebookSize;
        using var scope = NewDisposeScope();
        Tensor x = encoder.EncoderOutputs(JukeboxTiny.NormalizedAudio());
        CodeUsage gaussian = CodeUsage.Of(CodebookInit.Nearest(x, encoder.Codebook()), bins);

        using var generator = new Generator(11);
        Tensor sampled = CodebookInit.FromSamples(x, bins, generator);
        // init_k's codes are encoder outputs themselves (the clip has more frames than codes, so no tiling noise).
        bool allOutputs = sampled.unsqueeze(1).eq(x.unsqueeze(0)).all(-1).any(1).all().item<bool>();
        Assert.True(allOutputs, "every sampled code is one of the encoder outputs");
        CodeUsage init = CodeUsage.Of(CodebookInit.Nearest(x, sampled), bins);
        Tensor refined = CodebookInit.Refine(x, sampled, generator);
        CodeUsage kmeans = CodeUsage.Of(CodebookInit.Nearest(x, refined), bins);
        output.WriteLine($"gaussian {gaussian}, init_k {init}, k-means {kmeans}");
        Assert.Equal(x.shape[0], gaussian.Frames);
        Assert.True(init.Used > gaussian.Used && init.Perplexity > 2 * gaussian.Perplexity, $"init_k {init} vs gaussian {gaussian}");
        Assert.True(kmeans.Used >= init.Used * 9 / 10, $"k-means {kmeans} vs init_k {init}");
    }

    [Fact]
    public void AFewOutputsAreTiledWithSmallNoiseToFillTheCodebook()
    {
        using var scope = NewDisposeScope();
        Tensor x = randn(5, 16);
        using var generator = new Generator(2);
        Tensor k = CodebookInit.FromSamples(x, 12, generator);
        Assert.Equal([12L, 16L], k.shape);
        // Each code is an output plus noise of std 0.01/√16 per coordinate: near one, equal to none.
        float nearest = (k.unsqueeze(1) - x.unsqueeze(0)).pow(KeptScalars.Two).sum(-1).sqrt().min(1).values.max().item<float>();
        Assert.InRange(nearest, 1e-6f, 0.05f);
        Assert.False(k.unsqueeze(1).eq(x.unsqueeze(0)).all(-1).any().item<bool>(), "tiled codes carry noise");
    }

    [Fact]
    public void InitCodebookFolderChangesOnlyTheCodebookAndLoadsAndEmbeds()
    {
        using var source = new TempDirectory();
        using var target = new TempDirectory();
        RandomJukeboxCheckpoint.Write(JukeboxTiny.Config(layers: 3), source.Path, seed: 3);
        float[] audio = JukeboxTiny.NormalizedAudio();
        float[] before;
        Tensor codebook;
        using (JukeboxEncoder encoder = JukeboxEncoderLoader.Load(source.Path))
        {
            before = encoder.Embed(audio).Values;
            using Tensor x = encoder.EncoderOutputs(audio);
            using var generator = new Generator(5);
            codebook = CodebookInit.FromSamples(x, encoder.Config.Vqvae.CodebookSize, generator);
            CodebookInit.WriteFolder(source.Path, target.Path, encoder.Config.Vqvae, codebook);
        }
        string k = "bottleneck.level_blocks.2.k";
        using (var a = new SafetensorsFile(source.File(JukeboxEncoderLoader.ConvertedVqvaeFileName)))
        using (var b = new SafetensorsFile(target.File(JukeboxEncoderLoader.ConvertedVqvaeFileName)))
        {
            Assert.Equal(a.Entries.Keys.Order(), b.Entries.Keys.Order());
            foreach (TensorEntry e in a.Entries.Values)
            {
                using Tensor x = empty(e.Shape), y = empty(e.Shape);
                a.ReadInto(e.Name, x);
                b.ReadInto(e.Name, y);
                Assert.Equal(b.Entries[e.Name].DType, e.DType);
                if (e.Name == k) Assert.True(y.eq(codebook).all().item<bool>(), "the new codebook was written");
                else Assert.True(x.eq(y).all().item<bool>(), $"{e.Name} is unchanged");
            }
        }
        Assert.Equal(File.ReadAllBytes(source.File(JukeboxEncoderLoader.ConvertedPriorFileName)), File.ReadAllBytes(target.File(JukeboxEncoderLoader.ConvertedPriorFileName)));
        using JukeboxEncoder written = JukeboxEncoderLoader.Load(target.Path);
        AudioEmbedding after = written.Embed(audio);
        Assert.Equal(before.Length, after.Values.Length);
        Assert.NotEqual(before, after.Values);
        Assert.All(after.Values, v => Assert.True(float.IsFinite(v)));
        codebook.Dispose();
    }

    [Fact]
    public void TrainingLowersTheNextCodeLossOfTheFixtureClip()
    {
        using var dir = new TempDirectory();
        RandomJukeboxCheckpoint.Write(ShortContext(), dir.Path, seed: 4);
        var options = new PriorTrainingOptions { LearningRate = 3e-3, WarmupSteps = 0, Batch = 2, Seed = 1 };
        using PriorTrainer trainer = PriorTrainer.Open(dir.Path, options);
        PriorTrainingData data = Data(trainer);
        using Tensor eval = data.FirstWindows(1);
        double start = trainer.Loss(eval);
        // Jukebox's x_out starts near zero: the first loss is close to log2(bins) bits.
        Assert.InRange(start, Math.Log2(192) - 0.1, Math.Log2(192) + 0.1);
        for (int step = 0; step < 12; step++)
        {
            using Tensor batch = data.Batch(trainer.Step, options.Batch, options.Seed);
            trainer.TrainStep(batch);
        }
        double end = trainer.Loss(eval);
        output.WriteLine($"next-code loss {start:F3} -> {end:F3} bits/code after {trainer.Step} steps");
        Assert.Equal(12, trainer.Step);
        Assert.True(end < start - 0.5, $"loss {start:F3} -> {end:F3}");
    }

    [Fact]
    public void AResumedRunContinuesExactlyAsAnUninterruptedOne()
    {
        using var start = new TempDirectory();
        using var straight = new TempDirectory();
        using var halves = new TempDirectory();
        RandomJukeboxCheckpoint.Write(ShortContext(), start.Path, seed: 4);
        var options = new PriorTrainingOptions { LearningRate = 1e-3, WarmupSteps = 2, Batch = 2, Seed = 9 };

        void Train(string from, string to, int steps, bool resume)
        {
            using PriorTrainer trainer = PriorTrainer.Open(from, options, loadState: resume);
            PriorTrainingData data = Data(trainer);
            while (trainer.Step < steps)
            {
                using Tensor batch = data.Batch(trainer.Step, options.Batch, options.Seed);
                trainer.TrainStep(batch);
            }
            trainer.Save(to, from);
        }
        Train(start.Path, straight.Path, 4, resume: false);
        Train(start.Path, halves.Path, 2, resume: false);
        Train(halves.Path, halves.Path, 4, resume: true);

        foreach (string file in new[] { JukeboxEncoderLoader.ConvertedPriorFileName, PriorTrainer.StateFileName })
            SameTensors(straight.File(file), halves.File(file), step: "4");
        using var untrained = new SafetensorsFile(start.File(JukeboxEncoderLoader.ConvertedPriorFileName));
        using var trained = new SafetensorsFile(straight.File(JukeboxEncoderLoader.ConvertedPriorFileName));
        using Tensor w0 = empty(untrained.Entries["prior.x_emb.weight"].Shape), w1 = empty(trained.Entries["prior.x_emb.weight"].Shape);
        untrained.ReadInto("prior.x_emb.weight", w0);
        trained.ReadInto("prior.x_emb.weight", w1);
        Assert.False(w0.eq(w1).all().item<bool>(), "training moved the code embedding");
    }

    [Fact]
    public void ATrainedPriorKeepsItsOutputHeadAndStillLoadsForEmbedding()
    {
        using var start = new TempDirectory();
        using var trainedDir = new TempDirectory();
        JukeboxEncoderConfig config = ShortContext();
        RandomJukeboxCheckpoint.Write(config, start.Path, seed: 4);
        var options = new PriorTrainingOptions { LearningRate = 1e-3, WarmupSteps = 0, Batch = 1 };
        using (PriorTrainer trainer = PriorTrainer.Open(start.Path, options, embedLayers: 2))
        {
            PriorTrainingData data = Data(trainer);
            using Tensor batch = data.Batch(0, 1, 0);
            trainer.TrainStep(batch);
            trainer.Save(trainedDir.Path, start.Path);
        }
        using (var prior = new SafetensorsFile(trainedDir.File(JukeboxEncoderLoader.ConvertedPriorFileName)))
        {
            Assert.Equal([192L, 48L], prior.Entries[PriorTrainer.OutputHeadName].Shape);
            Assert.True(prior.Entries.ContainsKey("prior.transformer._attn_mods.2.attn.c_attn.w"), "every trained block is kept");
        }
        using JukeboxEncoder encoder = JukeboxEncoderLoader.Load(trainedDir.Path);
        Assert.Equal(2, encoder.Config.Layers);
        AudioEmbedding embedding = encoder.Embed(JukeboxTiny.NormalizedAudio());
        Assert.Equal(48, embedding.Width);
        Assert.All(embedding.Values, v => Assert.True(float.IsFinite(v)));

        // Opening the trained folder again reads its head instead of drawing a new one: the loss is the one it ended with.
        using PriorTrainer again = PriorTrainer.Open(trainedDir.Path, options, loadState: true);
        Assert.Equal(1, again.Step);
    }

    [Fact]
    public void AFolderWhoseStateAndPriorDisagreeIsRefused()
    {
        using var start = new TempDirectory();
        using var a = new TempDirectory();
        RandomJukeboxCheckpoint.Write(ShortContext(), start.Path, seed: 4);
        var options = new PriorTrainingOptions { WarmupSteps = 0, Batch = 1 };
        using (PriorTrainer trainer = PriorTrainer.Open(start.Path, options))
        {
            PriorTrainingData data = Data(trainer);
            using Tensor batch = data.Batch(0, 1, 0);
            trainer.Save(a.Path, start.Path);
            trainer.TrainStep(batch);
            // A save cut short after the prior file: the state still says step 0.
            string state = a.File(PriorTrainer.StateFileName);
            File.Copy(state, state + ".old");
            trainer.Save(a.Path, start.Path);
            File.Move(state + ".old", state, overwrite: true);
        }
        var e = Assert.Throws<CheckpointException>(() => PriorTrainer.Open(a.Path, options, loadState: true));
        Assert.Contains("interrupted", e.Message, StringComparison.Ordinal);
    }

    /// <summary>Two safetensors files hold the same names and, to 1e-6, the same values, and the second was saved at <paramref name="step"/>.</summary>
    internal static void SameTensors(string expected, string actual, string step)
    {
        using var a = new SafetensorsFile(expected);
        using var b = new SafetensorsFile(actual);
        Assert.Equal(step, b.Metadata["step"]);
        Assert.Equal(a.Entries.Keys.Order(), b.Entries.Keys.Order());
        foreach (TensorEntry e in a.Entries.Values)
        {
            using Tensor x = empty(e.Shape, dtype: e.DType.ToScalarType()), y = empty(e.Shape, dtype: e.DType.ToScalarType());
            a.ReadInto(e.Name, x);
            b.ReadInto(e.Name, y);
            double diff = (x.to(ScalarType.Float64) - y.to(ScalarType.Float64)).abs().max().item<double>();
            Assert.True(diff <= 1e-6, $"{Path.GetFileName(actual)} {e.Name}: max |diff| {diff:E2}");
        }
    }

    private static PriorTrainingData Data(PriorTrainer trainer) =>
        new([trainer.Encoder.Codes(JukeboxTiny.NormalizedAudio())], trainer.Config.Prior.NCtx);
}
