using System.Diagnostics;
using LLark.Language.Engine.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Training;

/// <summary>What a progress line shows after an optimizer step (or a validation, when <see cref="ValidationLoss"/> is set).</summary>
public sealed record TrainingProgress(int Step, int TotalSteps, double? Loss, double Lr, double TokensPerSecond, double StepsPerSecond,
    TimeSpan Eta, double? ValidationLoss = null, double? GradNorm = null);

public enum TrainingOutcome
{
    Completed,

    /// <summary>Cancelled (Ctrl-C): the state was saved and <c>--resume</c> continues from it.</summary>
    Interrupted,
}

public sealed record TrainingResult(TrainingOutcome Outcome, int Step, int TotalSteps, string? ModelDirectory, double? LastLoss, double? ValidationLoss,
    int TrainExamples, int ValidationExamples, IReadOnlyDictionary<string, int> Skipped, double StepsPerSecond, double TokensPerSecond);

/// <summary>
/// Runs a config: data, model, AdamW with the cosine schedule, gradient accumulation and clipping, validation, the
/// training state every save_every steps, and the servable checkpoint in <c>DIR/model</c> at the end.
/// </summary>
/// <remarks>
/// Micro-batch losses are each the mean over their own answer tokens and are divided by grad_accumulation before
/// backward, as the Hugging Face Trainer that LLaVA and LLark ran under did. The data order of epoch e is a
/// Fisher-Yates shuffle seeded by (seed, e), so the position in it is all a resumption needs; on the CPU every op is
/// deterministic once MKL runs in its reproducible mode (requested before the process's first tensor op: see
/// <see cref="LLark.Checkpoints.LibTorchEnvironment.RequestReproducibleMath"/>), so a resumed run reproduces the
/// uninterrupted one bit for bit.
/// </remarks>
public sealed class Trainer(TrainingConfig config, string outDir)
{
    static Trainer() => LLark.Checkpoints.LibTorchEnvironment.RequestReproducibleMath();

    public IProgress<TrainingProgress>? Progress { get; init; }

    /// <summary>Called once the data are read and the model built, with a one-paragraph description of the run.</summary>
    public Action<string>? Describe { get; init; }

    public TrainingResult Run(bool resume, CancellationToken ct = default)
    {
        Directory.CreateDirectory(outDir);
        string tokenizerPath = config.Model.Tokenizer is { } t ? config.Resolve(t) : Path.Combine(config.Resolve(config.Model.Base!), "tokenizer.model");
        if (!File.Exists(tokenizerPath)) throw new TrainingConfigException("model.tokenizer", $"tokenizer not found: {tokenizerPath}");
        LlamaTextTokenizer tokenizer = LlamaTextTokenizer.Load(tokenizerPath, LlamaTextTokenizer.LLarkAddedTokens);
        TrainingData data = TrainingData.Load(config, tokenizer);
        var audio = new AudioFormat(data.AudioWidth, data.AudioFps, data.AudioEncoder, data.AudioLayer);
        using TrainableLLark model = TrainableLLark.Create(config, audio, data.FrameStatistics);
        if (config.MaxLength > model.Llama.Config.MaxPositionEmbeddings)
            throw new TrainingConfigException("max_length", $"{config.MaxLength} is over the model's max_position_embeddings {model.Llama.Config.MaxPositionEmbeddings}");

        int batchesPerEpoch = (data.Train.Count + config.BatchSize - 1) / config.BatchSize;
        int totalSteps = config.Steps ?? Math.Max(1, (int)Math.Ceiling(config.Epochs * Math.Max(1, batchesPerEpoch / config.GradAccumulation)));
        var schedule = CosineSchedule.FromRatio(config.Optimizer.Lr, totalSteps, config.Optimizer.WarmupRatio);
        using var optimizer = new AdamW(model.Trained, config.Optimizer.Betas[0], config.Optimizer.Betas[1], config.Optimizer.Eps, config.Optimizer.WeightDecay);
        var order = new DataOrder(data.Train.Count, config.BatchSize, config.Seed);
        string lossPath = Path.Combine(outDir, LossHistory.FileName);

        var state = new TrainingProgressState { Config = config.ResumeFingerprint() };
        if (resume)
        {
            state = TrainingState.Load(outDir, model.Trained, optimizer)
                ?? throw new TrainingConfigException("--resume", $"no training state in {TrainingState.Folder(outDir)}");
            if (state.Config != config.ResumeFingerprint())
                throw new TrainingConfigException("--resume", "the config differs from the one the saved state was made with (model, mode, optimizer, batch, steps, seed or data)");
            LossHistory.TruncateAfter(lossPath, state.Step);
        }
        else if (File.Exists(lossPath))
        {
            File.Delete(lossPath);
        }
        string repeats = config.Data.TaskRepeats is { Count: > 0 } r
            ? " (with " + string.Join(", ", r.Select(t => $"{t.Key} x{t.Value}: {data.Train.Count(e => e.Task == t.Key)}")) + ")"
            : "";
        Describe?.Invoke($"{data.Train.Count} training{repeats} and {data.Validation.Count} validation examples" +
            (data.Skipped.Count > 0 ? " (skipped: " + string.Join(", ", data.Skipped.Select(s => $"{s.Value} {s.Key}")) + ")" : "") +
            $"; audio {data.AudioWidth} wide at {data.AudioFps} fps from {data.AudioEncoder} layer {data.AudioLayer}; " +
            $"mode {config.Mode}: {model.Trained.Sum(p => p.Tensor.NumberOfElements):N0} trained parameters in {model.Trained.Count} tensors; " +
            $"{totalSteps} steps of {config.BatchSize} x {config.GradAccumulation}, warm-up {schedule.WarmupSteps}" +
            (config.FrameNoise > 0 ? $"; frame noise {config.FrameNoise} x each dimension's std" : "") +
            (resume ? $"; resuming at step {state.Step}" : ""));

        using var history = new LLark.Data.JsonLinesAppender(lossPath);
        var clock = Stopwatch.StartNew();
        double elapsedBefore = state.ElapsedSeconds;
        int startStep = state.Step;
        long tokensThisRun = 0;
        double? lastLoss = null, valLoss = null;
        int step = state.Step;
        long micro = state.MicroBatches;
        long tokens = state.Tokens;
        int savedStep = resume ? step : -1;

        TrainingProgressState Snapshot() => state with
        {
            Step = step, MicroBatches = micro, OptimizerSteps = optimizer.StepCount, Tokens = tokens,
            ElapsedSeconds = elapsedBefore + clock.Elapsed.TotalSeconds,
        };
        void Save()
        {
            TrainingState.Save(outDir, Snapshot(), model.Trained, optimizer);
            savedStep = step;
        }

        float[]? noiseStd = config.FrameNoise > 0 ? data.FrameStatistics().Std : null;
        using Scalar accumulation = config.GradAccumulation.ToScalar();
        while (step < totalSteps)
        {
            if (ct.IsCancellationRequested)
            {
                if (savedStep != step) Save();
                return Result(TrainingOutcome.Interrupted, null);
            }
            double lossSum = 0;
            long stepTokens = 0;
            model.BeginStep(step);
            for (int a = 0; a < config.GradAccumulation; a++)
            {
                TrainingBatch batch = ExampleLayout.Collate([.. order.Batch(micro).Select(i => data.Train[i])], data.ReadFrames, model.PadId);
                if (noiseStd is not null) batch = batch with { Frames = FrameNoise.Apply(batch.Frames, noiseStd, config.FrameNoise, config.Seed, micro) };
                micro++;
                using var scope = NewDisposeScope();
                Tensor loss = model.Loss(batch);
                lossSum += loss.item<float>();
                (config.GradAccumulation == 1 ? loss : loss.div(accumulation)).backward();
                stepTokens += batch.Tokens;
            }
            double norm = Gradients.ClipNorm(model.Trained, config.Optimizer.MaxGradNorm);
            double lr = schedule.At(step);
            optimizer.Step(lr);
            Gradients.Zero(model.Trained);
            step++;
            tokens += stepTokens;
            tokensThisRun += stepTokens;
            lastLoss = lossSum / config.GradAccumulation;
            double seconds = clock.Elapsed.TotalSeconds;
            history.Append(new LossRecord { Step = step, Loss = lastLoss, Lr = lr, GradNorm = norm, Tokens = stepTokens, ElapsedSeconds = elapsedBefore + seconds });
            if (step % config.LogEvery == 0 || step == totalSteps)
            {
                double stepsPerSecond = (step - startStep) / seconds;
                Progress?.Report(new TrainingProgress(step, totalSteps, lastLoss, lr, tokensThisRun / seconds, stepsPerSecond,
                    TimeSpan.FromSeconds((totalSteps - step) / stepsPerSecond), GradNorm: norm));
            }
            if (config.EvalEvery > 0 && step % config.EvalEvery == 0 && step < totalSteps) valLoss = Validate(step);
            if (config.SaveEvery > 0 && step % config.SaveEvery == 0 && step < totalSteps) Save();
        }
        valLoss = Validate(step) ?? valLoss;
        Save();
        string modelDir = Path.Combine(outDir, "model");
        model.Export(modelDir, audio);
        LossHistory.Plot(lossPath, Path.Combine(outDir, LossHistory.PlotFileName));
        return Result(TrainingOutcome.Completed, modelDir);

        double? Validate(int atStep)
        {
            if (data.Validation.Count == 0) return null;
            double sum = 0;
            long count = 0;
            for (int i = 0; i < data.Validation.Count; i += config.BatchSize)
            {
                TrainingBatch batch = ExampleLayout.Collate([.. data.Validation.Skip(i).Take(config.BatchSize)], data.ReadFrames, model.PadId);
                (double s, int n) = model.EvalLoss(batch);
                sum += s;
                count += n;
            }
            double mean = sum / count;
            history.Append(new LossRecord { Step = atStep, ValidationLoss = mean, ElapsedSeconds = elapsedBefore + clock.Elapsed.TotalSeconds });
            Progress?.Report(new TrainingProgress(atStep, totalSteps, null, schedule.At(Math.Max(0, atStep - 1)), 0, 0, TimeSpan.Zero, ValidationLoss: mean));
            return mean;
        }

        TrainingResult Result(TrainingOutcome outcome, string? dir)
        {
            double seconds = Math.Max(1e-9, clock.Elapsed.TotalSeconds);
            return new TrainingResult(outcome, step, totalSteps, dir, lastLoss, valLoss, data.Train.Count, data.Validation.Count, data.Skipped,
                (step - startStep) / seconds, tokensThisRun / seconds);
        }
    }
}

/// <summary>
/// The order examples are seen in: epoch after epoch, each a fresh shuffle seeded by (seed, epoch), cut into
/// micro-batches of batch_size (the last one of an epoch may be smaller). Micro-batch k is a pure function of k.
/// </summary>
public sealed class DataOrder(int count, int batchSize, int seed)
{
    private int cachedEpoch = -1;
    private int[] permutation = [];

    public int BatchesPerEpoch { get; } = (count + batchSize - 1) / batchSize;

    public int[] Batch(long microBatch)
    {
        int epoch = (int)(microBatch / BatchesPerEpoch);
        int index = (int)(microBatch % BatchesPerEpoch);
        if (epoch != cachedEpoch)
        {
            permutation = Shuffle(count, unchecked(seed * 1_000_003 + epoch));
            cachedEpoch = epoch;
        }
        int start = index * batchSize;
        return permutation[start..Math.Min(count, start + batchSize)];
    }

    /// <summary>Fisher-Yates with .NET's seeded Random, whose sequence for a given seed is fixed across runtimes.</summary>
    private static int[] Shuffle(int n, int seed)
    {
        var random = new Random(seed);
        int[] p = [.. Enumerable.Range(0, n)];
        for (int i = n - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }
}
