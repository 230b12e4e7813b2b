using LLark.Checkpoints;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Multimodal;
using LLark.Tests.Checkpoints;
using LLark.Tests.TestSupport;
using LLark.Training;
using static TorchSharp.torch;

namespace LLark.Tests.Training;

public sealed class TrainerTests
{
    [Fact]
    public void PromptTokensAreWhatInferenceBuildsAndOnlyTheAnswerIsLabelled()
    {
        using LLarkModel model = LLarkModel.Load(TinyLLark.Directory);
        const string question = "What is the tempo?", answer = "About 120 BPM.";
        (int[] ids, int[] labels) = ExampleLayout.Build(model.Tokenizer, question, answer, frames: 5, maxLength: 256, out string? skipped)!.Value;
        Assert.Null(skipped);
        using LLarkPromptInput prompt = model.BuildPrompt([new ChatTurn(question)], new AudioFrames(new float[5 * TinyLLark.AudioWidth], 5, TinyLLark.AudioWidth, TinyLLark.Fps));
        Assert.Equal(prompt.Ids, ids[..prompt.Ids.Length]);
        Assert.All(labels[..prompt.Ids.Length], l => Assert.Equal(ExampleLayout.IgnoreIndex, l));
        int[] answerIds = ids[prompt.Ids.Length..];
        Assert.Equal(answerIds, labels[prompt.Ids.Length..]);
        Assert.Equal(answer + "\n###", model.Tokenizer.Decode(answerIds));

        // Truncation cuts the answer's end, never the audio span; a prompt that cannot fit is skipped, not cut.
        (int[] cutIds, int[] cutLabels) = ExampleLayout.Build(model.Tokenizer, question, answer, 5, prompt.Ids.Length + 2, out _)!.Value;
        Assert.Equal(prompt.Ids.Length + 2, cutIds.Length);
        Assert.Equal(2, cutLabels.Count(l => l != ExampleLayout.IgnoreIndex));
        Assert.Null(ExampleLayout.Build(model.Tokenizer, question, answer, 300, 256, out string? why));
        Assert.Contains("max_length", why, StringComparison.Ordinal);
    }

    [Fact]
    public void BatchesArePaddedOnTheRightWithPadAndIgnoredLabels()
    {
        using var dir = new TempDirectory();
        TrainingFixtures.WriteSet(dir.Path);
        TrainingConfig config = TrainingFixtures.Config(dir.Path);
        var tokenizer = LLark.Language.Engine.Tokenization.LlamaTextTokenizer.Load(Path.Combine(TinyLLark.Directory, "tokenizer.model"));
        TrainingData data = TrainingData.Load(config, tokenizer);
        TrainingExample[] two = [data.Train[0], data.Train[^1]];
        TrainingBatch batch = ExampleLayout.Collate(two, data.ReadFrames, padId: 1024);
        Assert.Equal(two.Max(e => e.Ids.Length), batch.Length);
        Assert.Equal(two.Sum(e => e.Embedding.Frames), batch.FrameCount);
        Assert.Equal(batch.FrameCount * TinyLLark.AudioWidth, batch.Frames.Length);
        TrainingExample shorter = two.MinBy(e => e.Ids.Length)!;
        int row = Array.IndexOf(two, shorter);
        for (int t = shorter.Ids.Length; t < batch.Length; t++)
        {
            Assert.Equal(1024, batch.Ids[row * batch.Length + t]);
            Assert.Equal(ExampleLayout.IgnoreIndex, batch.Labels[row * batch.Length + t]);
        }
    }

    [Fact]
    public void ATinyRunLearnsAndItsCheckpointServes()
    {
        using var dir = new TempDirectory();
        TrainingFixtures.WriteSet(dir.Path);
        string outDir = Path.Combine(dir.Path, "run");
        var lines = new List<TrainingProgress>();
        var trainer = new Trainer(TrainingFixtures.Config(dir.Path, steps: 40, warmup: 0.05), outDir) { Progress = new SyncProgress(lines.Add) };
        TrainingResult result = trainer.Run(resume: false);

        Assert.Equal(TrainingOutcome.Completed, result.Outcome);
        LossCurves curves = LossHistory.ReadCurves(Path.Combine(outDir, LossHistory.FileName));
        Assert.Equal(40, curves.Train.Count);
        double first = curves.Train.Take(5).Average(p => p.Loss), last = curves.Train.TakeLast(5).Average(p => p.Loss);
        Console.WriteLine($"loss: first five steps {first:F3}, last five {last:F3}; {result.StepsPerSecond:F1} steps/s, {result.TokensPerSecond:F0} tokens/s");
        Assert.True(last < first / 4, $"the loss did not fall: {first:F3} -> {last:F3}");
        Assert.Equal(40, lines.Count(l => l.Loss is not null));
        // The loss curve is drawn at the end of the run.
        var png = LLark.Tests.Evaluation.PngFile.Read(Path.Combine(outDir, LossHistory.PlotFileName));
        Assert.Equal((800, 560), (png.Width, png.Height));
        Assert.True(png.Pixels.Distinct().Count() > 3, "the loss plot has nothing drawn on it");

        using LLarkModel model = LLarkModel.Load(result.ModelDirectory!);
        Assert.Equal(TinyLLark.AudioWidth, model.AudioWidth);
        Assert.Equal(TinyLLark.Fps, model.AudioFps);
        Assert.Equal("jukebox-tiny", model.AudioEncoder);
        Assert.Equal(2, model.AudioLayer);
        var set = LLark.Data.EmbeddingSet.Load(Path.Combine(dir.Path, "embeddings"));
        Assert.True(set.TryGet("clip1", out var clip));
        using LLarkPromptInput prompt = model.BuildPrompt([new ChatTurn("Describe this clip.")],
            new AudioFrames(set.ReadFrames(clip), clip.Frames, clip.Width, clip.Fps, clip.Encoder));
        GenerationResult answer = new TextGenerator(model.Llama).Generate(prompt.Embeddings, prompt.Ids, model.Tokenizer.CreateDetokenizer(false),
            new GenerationOptions { MaxNewTokens = 24, StopStrings = [LLarkPrompt.StopString] }).Last().Result!;
        Console.WriteLine($"answer for clip1: '{answer.Text}'");
        Assert.Equal(TrainingFixtures.Answers[1], answer.Text.Trim());
    }

    [Theory]
    [InlineData("full", 0.0)]
    [InlineData("lora", 0.0)]
    [InlineData("full", 0.5)]
    public void StepsSplitByAResumeEqualTheStepsRunStraightToTheBit(string mode, double frameNoise)
    {
        using var dir = new TempDirectory();
        TrainingFixtures.WriteSet(dir.Path, clips: 5);
        // Batch 3 over 10 examples with accumulation 2: the run crosses an epoch boundary and stops mid-epoch; in lora
        // mode every step also draws dropout masks, and with frame noise every micro-batch draws its noise.
        TrainingConfig config = TrainingFixtures.Config(dir.Path, mode: mode, steps: 6, batch: 3, accumulation: 2, warmup: 0.2) with { FrameNoise = frameNoise };
        string straight = Path.Combine(dir.Path, "straight"), split = Path.Combine(dir.Path, "split");
        new Trainer(config, straight).Run(resume: false);

        using var cts = new CancellationTokenSource();
        var stopper = new SyncProgress(p => { if (p.Step == 3) cts.Cancel(); });
        TrainingResult first = new Trainer(config, split) { Progress = stopper }.Run(resume: false, cts.Token);
        Assert.Equal(TrainingOutcome.Interrupted, first.Outcome);
        Assert.Equal(3, first.Step);
        TrainingResult second = new Trainer(config, split).Run(resume: true);
        Assert.Equal(TrainingOutcome.Completed, second.Outcome);

        foreach (string file in new[] { "model/model.safetensors", "state/step-00000006/state.safetensors" })
        {
            byte[] a = File.ReadAllBytes(Path.Combine(straight, file)), b = File.ReadAllBytes(Path.Combine(split, file));
            Assert.True(a.AsSpan().SequenceEqual(b), $"{file} differs between the straight and the resumed run");
        }
        var straightLoss = LossHistory.ReadCurves(Path.Combine(straight, LossHistory.FileName)).Train;
        var splitLoss = LossHistory.ReadCurves(Path.Combine(split, LossHistory.FileName)).Train;
        Assert.Equal(straightLoss, splitLoss);
        if (frameNoise > 0)
        {
            string clean = Path.Combine(dir.Path, "clean");
            new Trainer(config with { FrameNoise = 0 }, clean).Run(resume: false);
            Assert.NotEqual(LossHistory.ReadCurves(Path.Combine(clean, LossHistory.FileName)).Train, straightLoss);
        }
    }

    [Fact]
    public void FrameNoiseIsEachDimensionsStdTimesTheScaleAndAFunctionOfSeedAndMicroBatch()
    {
        const int frames = 20_000;
        float[] std = [1f, 2f, 0f];
        var values = new float[frames * std.Length];
        for (int i = 0; i < values.Length; i++) values[i] = i % 3;
        float[] noisy = FrameNoise.Apply(values, std, 0.5, seed: 10, microBatch: 7);
        for (int d = 0; d < std.Length; d++)
        {
            double[] delta = [.. Enumerable.Range(0, frames).Select(f => (double)noisy[f * 3 + d] - values[f * 3 + d])];
            double mean = delta.Average(), sd = Math.Sqrt(delta.Select(x => (x - mean) * (x - mean)).Average());
            Assert.True(Math.Abs(mean) < 0.02 * Math.Max(std[d], 1), $"dimension {d}: mean {mean}");
            Assert.True(Math.Abs(sd - 0.5 * std[d]) < 0.02 * Math.Max(std[d], 1), $"dimension {d}: std {sd}, expected {0.5 * std[d]}");
        }
        Assert.Equal(noisy, FrameNoise.Apply(values, std, 0.5, seed: 10, microBatch: 7));
        Assert.NotEqual(noisy, FrameNoise.Apply(values, std, 0.5, seed: 10, microBatch: 8));
        Assert.NotEqual(noisy, FrameNoise.Apply(values, std, 0.5, seed: 11, microBatch: 7));
        Assert.Throws<ArgumentException>(() => FrameNoise.Apply(new float[7], std, 0.5, 1, 0));

        using var dir = new TempDirectory();
        TrainingConfig plain = TrainingFixtures.Config(dir.Path);
        Assert.DoesNotContain("frame_noise", plain.ResumeFingerprint(), StringComparison.Ordinal);
        Assert.Contains("frame_noise", (plain with { FrameNoise = 0.5 }).ResumeFingerprint(), StringComparison.Ordinal);
        Assert.Equal("frame_noise", Assert.Throws<TrainingConfigException>(() => TrainingConfig.Parse(
            """{"data": {"pairs": "p", "embeddings": "e"}, "model": {"base": "b"}, "frame_noise": -0.1}""", dir.Path)).Field);
    }

    [Fact]
    public void ValidationRunsEveryNStepsAndAtTheEnd()
    {
        using var dir = new TempDirectory();
        TrainingFixtures.WriteSet(dir.Path, clips: 12);
        string outDir = Path.Combine(dir.Path, "run");
        TrainingConfig config = TrainingFixtures.Config(dir.Path, steps: 5, validation: 0.3) with { EvalEvery = 2 };
        TrainingResult result = new Trainer(config, outDir).Run(resume: false);
        Assert.True(result.ValidationExamples > 0 && result.TrainExamples > 0, $"{result.TrainExamples} / {result.ValidationExamples}");
        Assert.Equal(24, result.TrainExamples + result.ValidationExamples);
        LossCurves curves = LossHistory.ReadCurves(Path.Combine(outDir, LossHistory.FileName));
        Assert.Equal([2, 4, 5], curves.Validation.Select(v => v.Step));
        Assert.All(curves.Validation, v => Assert.True(double.IsFinite(v.Loss) && v.Loss > 0));
        Assert.Equal(curves.Validation[^1].Loss, result.ValidationLoss);
    }

    [Fact]
    public void ProjectorModeChangesOnlyTheProjector()
    {
        using var dir = new TempDirectory();
        TrainingFixtures.WriteSet(dir.Path);
        string outDir = Path.Combine(dir.Path, "run");
        new Trainer(TrainingFixtures.Config(dir.Path, mode: "projector", steps: 3), outDir).Run(resume: false);
        using ITensorSource before = CheckpointOpener.Open(TinyLLark.Directory), after = CheckpointOpener.Open(Path.Combine(outDir, "model"));
        Assert.Equal(before.Entries.Keys.Order(), after.Entries.Keys.Order());
        foreach (string name in before.Entries.Keys)
        {
            using Tensor a = empty(before.Entries[name].Shape), b = empty(after.Entries[name].Shape);
            before.ReadInto(name, a);
            after.ReadInto(name, b);
            bool same = a.eq(b).all().item<bool>();
            Assert.True(name.StartsWith("model.mm_projector.", StringComparison.Ordinal) ? !same : same, $"{name}: changed = {!same}");
        }
    }

    [Fact]
    public void AStandardizedProjectorIsTheDefaultDrawAppliedToStandardizedFrames()
    {
        using var dir = new TempDirectory();
        TrainingFixtures.WriteSet(dir.Path);
        TrainingConfig plain = TrainingFixtures.Config(dir.Path, steps: 1) with { Model = new ModelConfig { Base = null, LlamaConfig = TinyFreshLlama(), Tokenizer = Path.Combine(TinyLLark.Directory, "tokenizer.model") } };
        var audio = new AudioFormat(TinyLLark.AudioWidth, TinyLLark.Fps, "jukebox-tiny", 2);
        var rng = new Random(3);
        float[] mean = Enumerable.Range(0, TinyLLark.AudioWidth).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        float[] std = Enumerable.Range(0, TinyLLark.AudioWidth).Select(_ => (float)(0.2 + rng.NextDouble())).ToArray();
        using TrainableLLark a = TrainableLLark.Create(plain, audio);
        using TrainableLLark b = TrainableLLark.Create(plain with { ProjectorInit = "standardize" }, audio, () => (mean, std));
        using Tensor frames = randn(7, TinyLLark.AudioWidth);
        using Tensor mu = tensor(mean), sigma = tensor(std);
        using Tensor standardized = (frames - mu) / sigma;
        using Tensor expected = Project(a, standardized), actual = Project(b, frames);
        Assert.True(expected.allclose(actual, rtol: 1e-4, atol: 1e-5), "W/σ and b − Wμ/σ must equal the default projector on standardised frames");
        Assert.Equal("projector_init", Assert.Throws<TrainingConfigException>(() => (plain with { ProjectorInit = "zeros" }).Validate()).Field);
    }

    [Fact]
    public void AnMlpProjectorTrainsAndExportsAsLLaVAsSequentialWhichTheEngineLoads()
    {
        using var dir = new TempDirectory();
        TrainingFixtures.WriteSet(dir.Path);
        TrainingConfig config = TrainingFixtures.Config(dir.Path, steps: 3) with
        {
            Model = new ModelConfig { Base = null, LlamaConfig = TinyFreshLlama(), Tokenizer = Path.Combine(TinyLLark.Directory, "tokenizer.model") },
            Projector = "mlp2x_gelu",
        };
        TrainingResult result = new Trainer(config, Path.Combine(dir.Path, "run")).Run(resume: false);
        string model = result.ModelDirectory!;

        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(model, "config.json")))!;
        Assert.Equal("mlp2x_gelu", (string?)json["mm_projector_type"]);
        using ITensorSource source = CheckpointOpener.Open(model);
        long hidden = (long)json["hidden_size"]!;
        Assert.Equal([hidden, TinyLLark.AudioWidth], source.Entries["model.mm_projector.0.weight"].Shape);
        Assert.Equal([hidden, hidden], source.Entries["model.mm_projector.2.weight"].Shape);
        Assert.Equal(["model.mm_projector.0.bias", "model.mm_projector.0.weight", "model.mm_projector.2.bias", "model.mm_projector.2.weight"],
            source.Entries.Keys.Where(k => k.StartsWith("model.mm_projector.", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        Tensor Read(string name)
        {
            Tensor t = empty(source.Entries[name].Shape);
            source.ReadInto(name, t);
            return t;
        }

        // The engine splices Linear -> GELU (erf) -> Linear of each frame, as LLaVA-1.5's nn.Sequential computes it.
        using LLarkModel loaded = LLarkModel.Load(model);
        using Tensor frames = randn(5, TinyLLark.AudioWidth);
        using LLarkPromptInput prompt = loaded.BuildPrompt([new ChatTurn("Describe this clip.")],
            new AudioFrames(frames.data<float>().ToArray(), 5, TinyLLark.AudioWidth, TinyLLark.Fps, "jukebox-tiny"));
        Assert.True(loaded.Tokenizer.TryGetAddedTokenId(LLarkPrompt.AudioPatch, out int patch));
        int first = Array.IndexOf(prompt.Ids, patch);
        using Tensor w0 = Read("model.mm_projector.0.weight"), b0 = Read("model.mm_projector.0.bias"), w2 = Read("model.mm_projector.2.weight"), b2 = Read("model.mm_projector.2.bias");
        using Tensor h = frames.matmul(w0.t()) + b0;
        using Tensor gelu = h * 0.5 * (1 + special.erf(h / Math.Sqrt(2)));
        using Tensor expected = gelu.matmul(w2.t()) + b2;
        using Tensor actual = prompt.Embeddings[0].narrow(0, first, 5);
        Assert.True(expected.allclose(actual, rtol: 1e-4, atol: 1e-5), "the loaded projector is not Linear, GELU, Linear");

        // A base LLark's projector cannot change shape under it, and a name the engine does not know is refused at load.
        var onLinearBase = TrainingFixtures.Config(dir.Path, steps: 1) with { Projector = "mlp2x_gelu" };
        Assert.Equal("projector", Assert.Throws<TrainingConfigException>(() => new Trainer(onLinearBase, Path.Combine(dir.Path, "bad")).Run(resume: false)).Field);
        Assert.Equal("projector", Assert.Throws<TrainingConfigException>(() => (config with { Projector = "mlp2x_relu" }).Validate()).Field);
        json["mm_projector_type"] = "qformer";
        File.WriteAllText(Path.Combine(model, "config.json"), json.ToJsonString());
        var refused = Assert.Throws<LLark.Language.Engine.Model.ModelConfigException>(() => LLarkModel.Load(model));
        Assert.Contains("mm_projector_type 'qformer'", refused.Message, StringComparison.Ordinal);
    }

    /// <summary>The model's projector (its trained weight and bias, a linear map) on frames [n, width].</summary>
    private static Tensor Project(TrainableLLark model, Tensor frames)
    {
        Tensor Trained(string name) => model.Trained.Single(t => t.Name == name).Tensor;
        using (no_grad()) return nn.functional.linear(frames, Trained("model.mm_projector.weight"), Trained("model.mm_projector.bias"));
    }

    private static System.Text.Json.Nodes.JsonObject TinyFreshLlama() =>
        System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(TinyLLark.Directory, "config.json")))!.AsObject();

    [Fact]
    public void TrainEmbeddingsAlsoTrainsTheRowsUsedAndTheHeadAndOnlyInFullMode()
    {
        using var dir = new TempDirectory();
        TrainingFixtures.WriteSet(dir.Path);
        string frozenDir = Path.Combine(dir.Path, "frozen"), trainedDir = Path.Combine(dir.Path, "trained");
        new Trainer(TrainingFixtures.Config(dir.Path, steps: 3), frozenDir).Run(resume: false);
        new Trainer(TrainingFixtures.Config(dir.Path, steps: 3) with { TrainEmbeddings = true }, trainedDir).Run(resume: false);
        using ITensorSource before = CheckpointOpener.Open(TinyLLark.Directory),
            frozen = CheckpointOpener.Open(Path.Combine(frozenDir, "model")), trained = CheckpointOpener.Open(Path.Combine(trainedDir, "model"));
        Tensor Read(ITensorSource source, string name)
        {
            Tensor t = empty(source.Entries[name].Shape);
            source.ReadInto(name, t);
            return t;
        }
        foreach (string name in new[] { "model.embed_tokens.weight", "lm_head.weight" })
        {
            using Tensor a = Read(before, name), f = Read(frozen, name), t = Read(trained, name);
            using Tensor rowChanged = t.ne(a).any(1);
            long changedRows = rowChanged.sum().item<long>();
            if (name == "model.embed_tokens.weight")
            {
                // Rows of tokens that never appear in a batch get no gradient, so AdamW leaves them as they were.
                Assert.True(changedRows >= 5 && changedRows <= a.shape[0] - 5, $"{name}: {changedRows} of {a.shape[0]} rows changed");
            }
            else
            {
                // The softmax gives every head row a gradient.
                Assert.Equal(a.shape[0], changedRows);
            }
            if (name == "lm_head.weight") Assert.True(f.eq(a).all().item<bool>(), "the default run must leave lm_head frozen");
        }

        var refused = Assert.Throws<TrainingConfigException>(
            () => (TrainingFixtures.Config(dir.Path, mode: "projector", steps: 1) with { TrainEmbeddings = true }).Validate());
        Assert.Equal("train_embeddings", refused.Field);
    }

    [Fact]
    public void TaskRepeatsOversampleOrDropTrainingExamplesByTaskAndNeverValidation()
    {
        using var dir = new TempDirectory();
        TrainingFixtures.WriteSet(dir.Path, clips: 8);
        var tokenizer = LLark.Language.Engine.Tokenization.LlamaTextTokenizer.Load(Path.Combine(TinyLLark.Directory, "tokenizer.model"));
        TrainingConfig plain = TrainingFixtures.Config(dir.Path, validation: 0.3);
        TrainingData once = TrainingData.Load(plain, tokenizer);
        Assert.NotEmpty(once.Validation);
        Assert.DoesNotContain("task_repeats", plain.ResumeFingerprint(), StringComparison.Ordinal);

        TrainingConfig weighted = plain with { Data = plain.Data with { TaskRepeats = new() { ["caption"] = 3 } } };
        TrainingData thrice = TrainingData.Load(weighted, tokenizer);
        int captions = once.Train.Count(e => e.Task == "caption");
        Assert.True(captions > 0);
        Assert.Equal(once.Train.Count + 2 * captions, thrice.Train.Count);
        Assert.Equal(3 * captions, thrice.Train.Count(e => e.Task == "caption"));
        Assert.Equal(once.Train.Count(e => e.Task == "hear"), thrice.Train.Count(e => e.Task == "hear"));
        // In place: each caption example three times in a row, the others where they were.
        static string Key(TrainingExample e) => $"{e.ClipId} {e.Task} {string.Join(',', e.Ids)}";
        Assert.Equal(once.Train.SelectMany(e => Enumerable.Repeat(Key(e), e.Task == "caption" ? 3 : 1)), thrice.Train.Select(Key));
        Assert.Equal(once.Validation.Select(Key), thrice.Validation.Select(Key));
        Assert.Contains("task_repeats", weighted.ResumeFingerprint(), StringComparison.Ordinal);

        TrainingData noCaptions = TrainingData.Load(plain with { Data = plain.Data with { TaskRepeats = new() { ["caption"] = 0 } } }, tokenizer);
        Assert.All(noCaptions.Train, e => Assert.Equal("hear", e.Task));
        Assert.Equal(once.Train.Count - captions, noCaptions.Train.Count);

        var misspelt = Assert.Throws<TrainingConfigException>(() => TrainingData.Load(
            plain with { Data = plain.Data with { TaskRepeats = new() { ["captoin"] = 2 } } }, tokenizer));
        Assert.Equal("data.task_repeats", misspelt.Field);
        Assert.Contains("'captoin'", misspelt.Message, StringComparison.Ordinal);
        Assert.Contains("caption, hear", misspelt.Message, StringComparison.Ordinal);
        Assert.Equal("data.task_repeats", Assert.Throws<TrainingConfigException>(() => TrainingConfig.Parse(
            """{"data": {"pairs": "p", "embeddings": "e", "task_repeats": {"tempo": -1}}, "model": {"base": "b"}}""", dir.Path)).Field);
    }

    [Fact]
    public void DataOrConfigThatDisagreeAreRefusedNamingTheField()
    {
        using var dir = new TempDirectory();
        TrainingFixtures.WriteSet(dir.Path, width: 40);
        var narrow = Assert.Throws<TrainingConfigException>(() => new Trainer(TrainingFixtures.Config(dir.Path), Path.Combine(dir.Path, "run")).Run(false));
        Assert.Equal("model.base", narrow.Field);
        Assert.Contains("mm_hidden_size", narrow.Message, StringComparison.Ordinal);

        // The bundled checkpoint says 25 fps; a set at 10 fps (and a config that expects 10) is refused by the checkpoint.
        using var tenFps = new TempDirectory();
        TrainingFixtures.WriteSet(tenFps.Path, fps: 10);
        TrainingConfig expectTen = TrainingFixtures.Config(tenFps.Path) with { Audio = new AudioExpectation { Fps = 10 } };
        var fpsError = Assert.Throws<TrainingConfigException>(() => new Trainer(expectTen, Path.Combine(tenFps.Path, "run")).Run(false));
        Assert.Equal("model.base", fpsError.Field);
        Assert.Contains("mm_audio_fps", fpsError.Message, StringComparison.Ordinal);

        using var mixed = new TempDirectory();
        TrainingFixtures.WriteSet(mixed.Path, fpsOf: c => c == 2 ? 10 : 25);
        Assert.Equal("data.embeddings", Assert.Throws<TrainingConfigException>(
            () => new Trainer(TrainingFixtures.Config(mixed.Path), Path.Combine(mixed.Path, "run")).Run(false)).Field);

        using var slow = new TempDirectory();
        TrainingFixtures.WriteSet(slow.Path, fps: 10);
        Assert.Equal("audio.fps", Assert.Throws<TrainingConfigException>(
            () => new Trainer(TrainingFixtures.Config(slow.Path), Path.Combine(slow.Path, "run")).Run(false)).Field);

        Assert.Equal("optimizer.warmup_ratio", Assert.Throws<TrainingConfigException>(() => TrainingConfig.Parse(
            """{"data": {"pairs": "p", "embeddings": "e"}, "model": {"base": "b"}, "optimizer": {"warmup_ratio": 2}}""", dir.Path)).Field);
        Assert.Equal("mode", Assert.Throws<TrainingConfigException>(() => TrainingConfig.Parse(
            """{"data": {"pairs": "p", "embeddings": "e"}, "model": {"base": "b"}, "mode": "everything"}""", dir.Path)).Field);
        var misspelt = Assert.Throws<TrainingConfigException>(() => TrainingConfig.Load(WriteConfig(dir.Path,
            """{"data": {"pairs": "p", "embeddings": "e"}, "model": {"base": "b"}, "optimizer": {"warmup": 0.1}}""")));
        Assert.Contains("warmup", misspelt.Message, StringComparison.Ordinal);
    }

    private static string WriteConfig(string dir, string json)
    {
        string path = Path.Combine(dir, "train.json");
        File.WriteAllText(path, json);
        return path;
    }

    /// <summary>Reports on the training thread (Progress&lt;T&gt; would post to the thread pool, too late for a test to act on).</summary>
    private sealed class SyncProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
