using LLark.Checkpoints;
using LLark.Encoder.Engine.Model;
using LLark.Tests.Encoder.Engine;
using LLark.Tests.Checkpoints;
using LLark.Training.Encoder;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace LLark.Tests.Training.Encoder;

/// <summary>Training the VQ-VAE's top level as Jukebox trains it: decoder, EMA codebook, losses, resume.</summary>
public sealed class VqvaeTrainingTests(ITestOutputHelper output)
{
    private static readonly VqvaeTrainingOptions Small = new() { Batch = 2, SampleLength = 8192, LearningRate = 3e-3, WarmupSteps = 0, Seed = 3 };

    [Fact]
    public void TheDecoderHasJukeboxsNamesAndShapesAndRestoresTheLength()
    {
        VqvaeConfig config = JukeboxTiny.Config().Vqvae;
        using var decoder = new VqvaeTopDecoder(config, CPU);
        var parameters = decoder.CheckpointParameters();
        // Decoder(levels 3): level_blocks.{0,1,2} (each DecoderConvBock: model.0 conv in, model.{j+1} = [Resnet1D, ConvTranspose1d]), then out.
        Assert.Equal([6L, 16, 3], parameters["decoders.2.level_blocks.0.model.0.weight"].shape);
        Assert.Equal([6L, 6, 3], parameters["decoders.2.level_blocks.0.model.1.0.model.3.model.1.weight"].shape);
        Assert.Equal([6L, 6, 1], parameters["decoders.2.level_blocks.0.model.1.0.model.3.model.3.weight"].shape);
        // ConvTranspose1d weight is [in, out, kernel]; the last up step of a block returns to emb_width.
        Assert.Equal([6L, 6, 4], parameters["decoders.2.level_blocks.0.model.1.1.weight"].shape);
        Assert.Equal([6L, 16, 4], parameters["decoders.2.level_blocks.0.model.3.1.weight"].shape);
        Assert.Equal([6L, 16, 4], parameters["decoders.2.level_blocks.2.model.2.1.weight"].shape);
        Assert.False(parameters.ContainsKey("decoders.2.level_blocks.2.model.3.1.weight"), "level block 2 has downs_t 2");
        Assert.Equal([1L, 16, 3], parameters["decoders.2.out.weight"].shape);
        // 3 + 2 + 2 up steps of 4 units (2 convs each, weight and bias), 3 input convs, 7 transposed convs, out.
        Assert.Equal((7 * 4 * 2 + 3 + 7 + 1) * 2, parameters.Count);

        using var scope = NewDisposeScope();
        using Scalar tenth = 0.1.ToScalar();
        foreach (Tensor p in parameters.Values)
            p.copy_(randn(p.shape).mul_(tenth));
        Tensor audio = decoder.Forward(randn(2, 16, 10));
        Assert.Equal([2L, 1280], audio.shape);
    }

    [Fact]
    public void TheDecoderComputesWhatJukeboxsDecoderComputes()
    {
        // Golden from the original jukebox.vqvae.encdec.Decoder (levels 3, the fixture's hps, reverse_decoder_dilation=True),
        // with weights and input from tests/fixtures/jukebox-tiny/decoder_level2.pth.
        using var source = JukeboxEncoderLoader.Open(JukeboxTiny.File("decoder_level2.pth"));
        using var decoder = new VqvaeTopDecoder(JukeboxTiny.Config().Vqvae, CPU);
        var parameters = decoder.CheckpointParameters();
        StrictLoader.Load(parameters, source, name => !parameters.ContainsKey(name));
        using var scope = NewDisposeScope();
        Tensor input = zeros(source.Entries["input"].Shape);
        Tensor expected = zeros(source.Entries["output"].Shape);
        source.ReadInto("input", input);
        source.ReadInto("output", expected);
        Tensor actual = decoder.Forward(input);
        JukeboxTiny.AssertClose(expected.squeeze(1), actual, "decoder output", 1e-5);
    }

    [Fact]
    public void TheCodebookMovesByTheEmaOfItsOutputsAndACodeUsedTooLittleRestarts()
    {
        using var scope = NewDisposeScope();
        // Three codes of width 2; outputs (1, 0), (3, 0) go to code 0, (0, 4) to code 1, nothing to code 2.
        Tensor kSum = tensor(new float[] { 2, 0, 0, 2, 5, 5 }, [3, 2]);
        Tensor kElem = tensor(new float[] { 2, 1, 1 }, [3]);
        Tensor x = tensor(new float[] { 1, 0, 3, 0, 0, 4 }, [3, 2]);
        Tensor codes = tensor(new long[] { 0, 0, 1 }, [3]);
        Tensor random = tensor(new float[] { 9, 9, 8, 8, 7, 7 }, [3, 2]);
        Tensor k = VqvaeTrainer.EmaUpdate(kSum, kElem, x, codes, mu: 0.5, threshold: 1.0, random);
        // k_sum = 0.5·k_sum + 0.5·sums: (3, 0), (0, 3), (2.5, 2.5); k_elem = 0.5·k_elem + 0.5·counts: 2, 1, 0.5.
        Assert.Equal(new float[] { 3, 0, 0, 3, 2.5f, 2.5f }, kSum.data<float>().ToArray());
        Assert.Equal(new float[] { 2, 1, 0.5f }, kElem.data<float>().ToArray());
        // Codes 0 and 1 are their means (1.5, 0) and (0, 3); code 2 fell below the threshold and restarts at its random row.
        Assert.Equal(new float[] { 1.5f, 0, 0, 3, 7, 7 }, k.data<float>().ToArray());
    }

    [Fact]
    public void TheLossTermsAreJukeboxsOnHandWorkedAudio()
    {
        using var scope = NewDisposeScope();
        Tensor target = zeros(2, 8192);
        Tensor output = zeros(2, 8192);
        output[0, 10] = tensor(2.0f);
        // lmix: mean squared error (4 / 16384) over the l2 bandwidth, plus 0.02 · the mean of each row's 2 largest (4, 0 | 0, 0) over it.
        double recons = VqvaeLosses.Reconstruction(target, output, l2Bandwidth: 0.5, linfWeight: 0.02, linfK: 2).item<float>();
        Assert.Equal(4.0 / 16384 / 0.5 + 0.02 * (4.0 / 4) / 0.5, recons, 6);
        Assert.Equal(0.0, VqvaeLosses.Multispectral(target, target, 1.0).item<float>(), 6);
        // The spectral term of a lone impulse: each resolution's norm of |STFT|, halved over the batch (row 1 is silent).
        double expected = VqvaeLosses.Resolutions.Average(r => VqvaeLosses.Norm(VqvaeLosses.Magnitude(output, r.NFft, r.Hop, r.Window))[0].item<float>()) / 2 / 10;
        Assert.Equal(expected, VqvaeLosses.Multispectral(target, output, 10).item<float>(), 4);
        Assert.True(expected > 0);
        // Jukebox's bandwidth: the population variance of the samples, and the mean STFT norm of a window.
        var bandwidth = VqvaeBandwidth.Measure(output);
        Assert.Equal(4.0 / 16384 - Math.Pow(2.0 / 16384, 2), bandwidth.L2, 9);
    }

    [Fact]
    public void TrainingLowersTheLossOnTheFixtureClipAndKeepsTheCodebookInUse()
    {
        using var dir = new TempDirectory();
        RandomJukeboxCheckpoint.Write(JukeboxTiny.Config(layers: 3), dir.Path, seed: 4);
        using VqvaeTrainer trainer = VqvaeTrainer.Open(dir.Path, Small);
        var data = new VqvaeTrainingData([JukeboxTiny.NormalizedAudio()], Small.SampleLength);
        using Tensor eval = data.Windows(4);
        trainer.Bandwidth = VqvaeBandwidth.Measure(eval);
        for (int step = 0; step < 3; step++)
        {
            using Tensor batch = data.Batch(trainer.Step, Small.Batch, Small.Seed);
            trainer.TrainStep(batch);
        }
        VqvaeStepMetrics start = trainer.Evaluate(eval);
        for (int step = 0; step < 20; step++)
        {
            using Tensor batch = data.Batch(trainer.Step, Small.Batch, Small.Seed);
            trainer.TrainStep(batch);
        }
        VqvaeStepMetrics end = trainer.Evaluate(eval);
        output.WriteLine($"after 3 steps {start}; after 23 {end}");
        Assert.Equal(23, trainer.Step);
        // Measured: 2.245 -> 2.111 in 40 steps; the spectral term falls with it.
        Assert.True(end.Loss < start.Loss - 0.04, $"loss {start.Loss:F4} -> {end.Loss:F4}");
        Assert.True(end.Multispectral < start.Multispectral, $"multispectral {start.Multispectral:F4} -> {end.Multispectral:F4}");
        Assert.True(end.CodesUsed >= 8, $"{end.CodesUsed} codes in use");
    }

    [Fact]
    public void AResumedRunContinuesExactlyAsAnUninterruptedOneAndTheFolderStillEmbeds()
    {
        using var start = new TempDirectory();
        using var straight = new TempDirectory();
        using var halves = new TempDirectory();
        RandomJukeboxCheckpoint.Write(JukeboxTiny.Config(layers: 3), start.Path, seed: 4);
        var data = new VqvaeTrainingData([JukeboxTiny.NormalizedAudio()], Small.SampleLength);

        void Train(string from, string to, int steps, bool resume)
        {
            using VqvaeTrainer trainer = VqvaeTrainer.Open(from, Small, loadState: resume);
            if (!resume)
            {
                using Tensor windows = data.Windows(4);
                trainer.Bandwidth = VqvaeBandwidth.Measure(windows);
            }
            while (trainer.Step < steps)
            {
                using Tensor batch = data.Batch(trainer.Step, Small.Batch, Small.Seed);
                trainer.TrainStep(batch);
            }
            trainer.Save(to, from);
        }
        Train(start.Path, straight.Path, 4, resume: false);
        Train(start.Path, halves.Path, 2, resume: false);
        Train(halves.Path, halves.Path, 4, resume: true);

        foreach (string file in new[] { JukeboxEncoderLoader.ConvertedVqvaeFileName, VqvaeTrainer.StateFileName })
            JukeboxTrainingTests.SameTensors(straight.File(file), halves.File(file), step: "4");
        using (var vqvae = new SafetensorsFile(straight.File(JukeboxEncoderLoader.ConvertedVqvaeFileName)))
        using (var before = new SafetensorsFile(start.File(JukeboxEncoderLoader.ConvertedVqvaeFileName)))
        {
            Assert.Contains("decoders.2.out.weight", vqvae.Entries.Keys);
            string w = "encoders.2.level_blocks.0.model.0.0.weight";
            using Tensor w0 = empty(before.Entries[w].Shape), w1 = empty(vqvae.Entries[w].Shape);
            before.ReadInto(w, w0);
            vqvae.ReadInto(w, w1);
            Assert.False(w0.eq(w1).all().item<bool>(), "training moved the encoder");
        }
        // The trained folder is an encoder folder: the engine loads it (the decoder is skipped) and embeds.
        using JukeboxEncoder encoder = JukeboxEncoderLoader.Load(straight.Path);
        AudioEmbedding embedding = encoder.Embed(JukeboxTiny.NormalizedAudio());
        Assert.All(embedding.Values, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void ANewRunFromATrainedVqvaeKeepsItsCodebook()
    {
        using var start = new TempDirectory();
        using var first = new TempDirectory();
        RandomJukeboxCheckpoint.Write(JukeboxTiny.Config(layers: 3), start.Path, seed: 4);
        // 4 windows of 16384 samples: 512 tokens a step, so a restored code's count (512 / 192) outlasts a step unused.
        VqvaeTrainingOptions options = Small with { Batch = 4, SampleLength = 16384 };
        var data = new VqvaeTrainingData([JukeboxTiny.NormalizedAudio()], options.SampleLength);
        using Tensor windows = data.Windows(4);
        using (VqvaeTrainer trainer = VqvaeTrainer.Open(start.Path, options))
        {
            trainer.Bandwidth = VqvaeBandwidth.Measure(windows);
            trainer.TrainStep(windows);
            trainer.Save(first.Path, start.Path);
        }
        using var scope = NewDisposeScope();
        Tensor Codebook(string folder)
        {
            using var file = new SafetensorsFile(Path.Combine(folder, JukeboxEncoderLoader.ConvertedVqvaeFileName));
            Tensor k = empty(file.Entries["bottleneck.level_blocks.2.k"].Shape);
            file.ReadInto("bottleneck.level_blocks.2.k", k);
            return k;
        }
        Tensor before = Codebook(first.Path);
        // A fresh run (no --resume) over the trained folder: restore_k, so one EMA step (mu 0.99) barely moves the codes;
        // init_k would have replaced them all with new samples of the batch.
        using var second = new TempDirectory();
        using (VqvaeTrainer trainer = VqvaeTrainer.Open(first.Path, options))
        {
            trainer.Bandwidth = VqvaeBandwidth.Measure(windows);
            trainer.TrainStep(windows);
            trainer.Save(second.Path, first.Path);
        }
        Tensor after = Codebook(second.Path);
        double moved = (after - before).norm().item<float>() / before.norm().item<float>();
        output.WriteLine($"relative codebook change {moved:E2}");
        Assert.InRange(moved, 0, 0.05);
    }

    [Fact]
    public void BadWindowsAndResumesWithoutADecoderAreRefused()
    {
        using var dir = new TempDirectory();
        RandomJukeboxCheckpoint.Write(JukeboxTiny.Config(layers: 3), dir.Path, seed: 4);
        Assert.Throws<ArgumentOutOfRangeException>(() => VqvaeTrainer.Open(dir.Path, Small with { SampleLength = 8200 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => (Small with { SampleLength = 1024 }).Validate());
        var e = Assert.Throws<CheckpointException>(() => VqvaeTrainer.Open(dir.Path, Small, loadState: true));
        Assert.Contains("no decoder", e.Message, StringComparison.Ordinal);
    }
}
