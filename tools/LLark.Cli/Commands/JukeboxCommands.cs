using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using LLark.Data;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Engine.Model;
using LLark.Training.Encoder;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Cli.Commands;

/// <summary>
/// <c>llark jukebox init-codebook | train-prior</c>: making a small Jukebox encoder from clips, in the same checkpoint
/// format as the 5B's. init-codebook sets the top level's codebook from encoder outputs (Jukebox's bottleneck
/// <c>init_k</c>, then k-means passes); train-prior trains the top prior by next-code prediction on the clips' codes.
/// </summary>
internal static class JukeboxCommands
{
    public static Command Create() => new("jukebox", "Make a small Jukebox encoder from clips: codebook initialisation and prior training")
    {
        NewPrior(),
        InitCodebook(),
        TrainVqvae(),
        TrainPrior(),
    };

    private static Command NewPrior()
    {
        var like = new Option<string>("--like") { Description = "encoder folder whose VQ-VAE and hyper-parameters to start from", Required = true };
        var output = new Option<string>("--out") { Description = "folder to write", Required = true };
        var width = new Option<int?>("--width") { Description = "prior_width (default: --like's)" };
        var depth = new Option<int?>("--depth") { Description = "prior blocks to create (default: --like's prior_depth)" };
        var heads = new Option<int?>("--heads") { Description = "attention heads (default: --like's)" };
        var nCtx = new Option<int?>("--n-ctx") { Description = "context in codes (default: --like's)" };
        var blocks = new Option<int?>("--blocks") { Description = "attention blocks the context is cut into: block length n_ctx/blocks (default: --like's)" };
        var layers = new Option<int?>("--layers") { Description = "blocks the embedding runs (default: half of --depth, as LLark runs 36 of 72)" };
        var seed = new Option<int>("--seed") { Description = "seeds the random weights", DefaultValueFactory = _ => 1234 };
        var vqWidth = new Option<int?>("--vqvae-width") { Description = "with any --vqvae-* or --codes: a fresh random VQ-VAE of this width instead of --like's (default: --like's)" };
        var vqEmbWidth = new Option<int?>("--vqvae-emb-width") { Description = "code vector width of the fresh VQ-VAE (default: --like's emb_width)" };
        var codes = new Option<int?>("--codes") { Description = "codebook size (l_bins) of the fresh VQ-VAE, and so of the prior's code embedding (default: --like's)" };
        var command = new Command("new-prior", "A fresh random top prior (Jukebox's init scales) of a chosen size over an encoder folder's VQ-VAE, or over a fresh random VQ-VAE")
        {
            like, output, width, depth, heads, nCtx, blocks, layers, seed, vqWidth, vqEmbWidth, codes,
        };
        command.SetAction(parse => CliErrors.Run(() =>
        {
            string from = parse.GetValue(like)!, to = parse.GetValue(output)!;
            string configPath = Path.Combine(from, JukeboxEncoderLoader.ConfigFileName);
            if (!File.Exists(configPath)) throw new FileNotFoundException($"{from} holds no {JukeboxEncoderLoader.ConfigFileName}", configPath);
            JukeboxEncoderConfig config = JukeboxEncoderConfig.FromJson(File.ReadAllText(configPath), configPath);
            PriorConfig prior = config.Prior with
            {
                Width = parse.GetValue(width) ?? config.Prior.Width,
                Depth = parse.GetValue(depth) ?? config.Prior.Depth,
                Heads = parse.GetValue(heads) ?? config.Prior.Heads,
                NCtx = parse.GetValue(nCtx) ?? config.Prior.NCtx,
                Blocks = parse.GetValue(blocks) ?? config.Prior.Blocks,
            };
            int embed = parse.GetValue(layers) ?? Math.Max(1, prior.Depth / 2);
            bool freshVqvae = parse.GetValue(vqWidth) is not null || parse.GetValue(vqEmbWidth) is not null || parse.GetValue(codes) is not null;
            VqvaeConfig vqvae = config.Vqvae with
            {
                Width = parse.GetValue(vqWidth) ?? config.Vqvae.Width,
                EmbWidth = parse.GetValue(vqEmbWidth) ?? config.Vqvae.EmbWidth,
                CodebookSize = parse.GetValue(codes) ?? config.Vqvae.CodebookSize,
            };
            if (vqvae.Width < 1 || vqvae.EmbWidth < 1 || vqvae.CodebookSize < 2)
                throw new UsageException("--vqvae-width and --vqvae-emb-width must be at least 1, --codes at least 2");
            var created = config with { Vqvae = vqvae, Prior = prior, Layers = prior.Depth };
            try
            {
                created.Validate("new prior");
                (created with { Layers = embed }).Validate("new prior");
            }
            catch (EncoderConfigException e)
            {
                throw new UsageException(e.Message);
            }
            if (string.Equals(Path.GetFullPath(from), Path.GetFullPath(to), StringComparison.Ordinal))
                throw new UsageException("--out must differ from --like");
            long bytes;
            if (freshVqvae)
            {
                // Random conv weights N(0, 1/fan_in), zero biases, an N(0, 1) codebook: run init-codebook next.
                bytes = RandomJukeboxCheckpoint.Write(created, to, parse.GetValue(seed));
            }
            else
            {
                bytes = RandomJukeboxCheckpoint.WritePrior(created, to, parse.GetValue(seed));
                File.Copy(Path.Combine(from, JukeboxEncoderLoader.ConvertedVqvaeFileName), Path.Combine(to, JukeboxEncoderLoader.ConvertedVqvaeFileName), overwrite: true);
            }
            File.WriteAllText(Path.Combine(to, JukeboxEncoderLoader.ConfigFileName), (created with { Layers = embed }).ToJson());
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {to}: {(freshVqvae ? $"random VQ-VAE (width {vqvae.Width}, {vqvae.CodebookSize} codes of {vqvae.EmbWidth}) and " : "")}random prior of {prior.Depth} blocks, width {prior.Width}, {prior.Heads} heads, n_ctx {prior.NCtx} " +
                $"({prior.NCtx / (double)config.TokensPerSecond:F2} s), blocks of {prior.BlockCtx} codes ({prior.BlockCtx / config.TokensPerSecond:F3} s); " +
                $"embedding after block {embed}; {bytes / 1048576.0:F2} MiB"));
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Option<string> AudioOption() => new("--audio")
    {
        Description = "a folder of clips (WAV, MP3, Ogg; searched recursively) or a manifest.jsonl", Required = true,
    };

    private static Option<string> SplitOption() => new("--split")
    {
        Description = "with a manifest: use the clips of this split (and those with none)", DefaultValueFactory = _ => "train",
    };

    private static Option<int?> ClipsOption() => new("--clips") { Description = "use at most this many clips (the first ones)" };

    private static Command InitCodebook()
    {
        var encoder = new Option<string>("--encoder") { Description = "the encoder folder (convert-jukebox layout)", Required = true };
        var audio = AudioOption();
        var output = new Option<string>("--out") { Description = "folder to write: the same files, only the codebook changed", Required = true };
        var clips = ClipsOption();
        var split = SplitOption();
        var seed = new Option<int>("--seed") { Description = "seeds the sample of encoder outputs", DefaultValueFactory = _ => 0 };
        var passes = new Option<int>("--kmeans") { Description = "k-means refinement passes after the sample (0: the sample alone, as init_k)", DefaultValueFactory = _ => 3 };
        var command = new Command("init-codebook", "Set the top-level codebook from the encoder's outputs on clips (Jukebox's init_k, then k-means)")
        {
            encoder, audio, output, clips, split, seed, passes,
        };
        command.SetAction((parse, ct) => CliErrors.Run(() => RunInitCodebook(parse.GetValue(encoder)!, parse.GetValue(audio)!, parse.GetValue(output)!,
            parse.GetValue(clips), parse.GetValue(split)!, parse.GetValue(seed), parse.GetValue(passes), ct)));
        return command;
    }

    /// <summary>The options train-vqvae and train-prior share: start folder, clips, output folder, steps and Adam's schedule.</summary>
    private static (Option<string> Encoder, Option<string> Audio, Option<string> Output, Option<int> Steps, Option<double> Lr, Option<int> Warmup) TrainingOptions() =>
        (new Option<string>("--encoder") { Description = "the encoder folder to start from (convert-jukebox layout)", Required = true },
         AudioOption(),
         new Option<string>("--out") { Description = "folder of the trained encoder (and its training state)", Required = true },
         new Option<int>("--steps") { Description = "train until this many optimiser steps in all", Required = true },
         new Option<double>("--lr") { Description = "Adam learning rate after warm-up", DefaultValueFactory = _ => 3e-4 },
         new Option<int>("--warmup") { Description = "linear warm-up steps", DefaultValueFactory = _ => 100 });

    /// <summary>Refuses a run that would overwrite another one (no --resume) or resume nothing, and bad step counts.</summary>
    private static void CheckRun(string output, string stateFile, bool resume, int steps, int saveEvery, int logEvery, string what)
    {
        if (steps < 1) throw new UsageException("--steps must be at least 1");
        if (saveEvery < 1 || logEvery < 1) throw new UsageException("--save-every and --log-every must be at least 1");
        bool saved = File.Exists(Path.Combine(output, stateFile));
        if (resume && !saved) throw new UsageException($"--resume: {output} holds no {stateFile} to continue from");
        if (!resume && saved) throw new UsageException($"{output} holds a {what} training run: pass --resume to continue it, or another --out");
    }

    private static Command TrainVqvae()
    {
        var (encoder, audio, output, steps, lr, warmup) = TrainingOptions();
        var batch = new Option<int>("--batch") { Description = "audio windows per step", DefaultValueFactory = _ => 8 };
        var window = new Option<int>("--window") { Description = "samples per window (a multiple of the hop length)", DefaultValueFactory = _ => 32768 };
        var seed = new Option<int>("--seed") { Description = "seeds the windows, the decoder's init and the codebook's draws", DefaultValueFactory = _ => 0 };
        var resume = new Option<bool>("--resume") { Description = "continue the run saved in --out" };
        var saveEvery = new Option<int>("--save-every") { Description = "save the folder every this many steps (and at the end)", DefaultValueFactory = _ => 100 };
        var logEvery = new Option<int>("--log-every") { Description = "a progress line every this many steps", DefaultValueFactory = _ => 10 };
        var clips = ClipsOption();
        var split = SplitOption();
        var command = new Command("train-vqvae",
            "Train the VQ-VAE's top level (encoder, EMA codebook, decoder) on the clips with Jukebox's losses; the prior over it must be trained again after")
        {
            encoder, audio, output, steps, lr, warmup, batch, window, seed, resume, saveEvery, logEvery, clips, split,
        };
        command.SetAction((parse, ct) => CliErrors.Run(() =>
        {
            var options = new VqvaeTrainingOptions
            {
                LearningRate = parse.GetValue(lr), WarmupSteps = parse.GetValue(warmup), Batch = parse.GetValue(batch),
                SampleLength = parse.GetValue(window), Seed = parse.GetValue(seed),
            };
            try
            {
                options.Validate();
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new UsageException(e.Message);
            }
            return RunTrainVqvae(parse.GetValue(encoder)!, parse.GetValue(audio)!, parse.GetValue(output)!, parse.GetValue(steps), options,
                parse.GetValue(resume), parse.GetValue(saveEvery), parse.GetValue(logEvery), parse.GetValue(clips), parse.GetValue(split)!, ct);
        }));
        return command;
    }

    private static int RunTrainVqvae(string folder, string audio, string output, int steps, VqvaeTrainingOptions options, bool resume,
        int saveEvery, int logEvery, int? clips, string split, CancellationToken ct)
    {
        CheckRun(output, VqvaeTrainer.StateFileName, resume, steps, saveEvery, logEvery, "VQ-VAE");
        var clock = Stopwatch.StartNew();
        VqvaeTrainer trainer;
        try
        {
            trainer = VqvaeTrainer.Open(resume ? output : folder, options, loadState: resume);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new UsageException(e.Message);
        }
        using var owned = trainer;
        JukeboxEncoderConfig config = trainer.Config;
        var (train, heldOut) = ClipSource.List(audio, split, clips);
        int sampleRate = config.Prior.SampleRate;
        var data = new VqvaeTrainingData(PreparedClips(sampleRate, train, "audio", ct).ToList(), options.SampleLength);
        // Jukebox's calculate_bandwidth reads 600 s of the training data.
        if (trainer.Bandwidth is null)
        {
            using Tensor windows = data.Windows((int)Math.Ceiling(600.0 * sampleRate / options.SampleLength));
            trainer.Bandwidth = VqvaeBandwidth.Measure(windows);
        }
        using Tensor evalWindows = heldOut.Count > 0
            ? new VqvaeTrainingData(PreparedClips(sampleRate, heldOut.Take(16).ToList(), "held-out audio", ct).ToList(), options.SampleLength).Windows(16)
            : data.Windows(16);
        string evalName = heldOut.Count > 0 ? "held-out" : "training";
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv,
            $"vqvae top level: width {config.Vqvae.TopWidth}, depth {config.Vqvae.TopDepth}, {config.Vqvae.CodebookSize} codes of {config.Vqvae.EmbWidth}, " +
            $"hop {config.Vqvae.HopLength}; {trainer.TrainedParameters} trained parameters; {data.Clips} clips, batch {options.Batch} x {options.SampleLength} samples; " +
            $"bandwidth l2 {trainer.Bandwidth!.L2:G4}, spec {trainer.Bandwidth.Spec:G4}; start step {trainer.Step} (setup {clock.Elapsed.TotalSeconds:F1} s)"));
        if (trainer.Step > 0)
            Console.WriteLine(Describe(trainer.Step, evalName, trainer.Evaluate(evalWindows)));

        var rate = Stopwatch.StartNew();
        int first = trainer.Step;
        var window = new List<VqvaeStepMetrics>();
        while (trainer.Step < steps)
        {
            ct.ThrowIfCancellationRequested();
            using (var scope = NewDisposeScope())
                window.Add(trainer.TrainStep(data.Batch(trainer.Step, options.Batch, options.Seed)));
            if (trainer.Step % logEvery == 0 || trainer.Step == steps)
            {
                double perStep = rate.Elapsed.TotalSeconds / (trainer.Step - first);
                VqvaeStepMetrics last = window[^1];
                Console.WriteLine(string.Create(inv,
                    $"step {trainer.Step}/{steps}: loss {window.Average(m => m.Loss):F4} (recons {window.Average(m => m.Reconstruction):F4}, " +
                    $"multispec {window.Average(m => m.Multispectral):F4}, commit {window.Average(m => m.Commit):G3}), codes used {last.CodesUsed}, " +
                    $"perplexity {last.Perplexity:F1}, grad norm {last.GradNorm:F2}, {1 / perStep:F2} steps/s, " +
                    $"ETA {TimeSpan.FromSeconds(perStep * (steps - trainer.Step)):h\\:mm\\:ss}"));
                window.Clear();
            }
            if (trainer.Step % saveEvery == 0 || trainer.Step == steps)
            {
                trainer.Save(output, resume ? output : folder);
                Console.WriteLine($"step {trainer.Step}: saved {output}; " + Describe(trainer.Step, evalName, trainer.Evaluate(evalWindows)));
            }
        }
        Console.WriteLine(string.Create(inv, $"done: {trainer.Step - first} steps in {rate.Elapsed.TotalSeconds:F1} s ({clock.Elapsed.TotalSeconds:F1} s with setup)") +
            "; train the prior over the new codes next (train-prior)");
        return ExitCodes.Ok;
    }

    private static string Describe(int step, string evalName, VqvaeStepMetrics m) => string.Create(CultureInfo.InvariantCulture,
        $"step {step}: {evalName} loss {m.Loss:F4} (recons {m.Reconstruction:F4}, multispec {m.Multispectral:F4}), codes used {m.CodesUsed}, perplexity {m.Perplexity:F1}");

    private static Command TrainPrior()
    {
        var (encoder, audio, output, steps, lr, warmup) = TrainingOptions();
        var batch = new Option<int>("--batch") { Description = "windows of n_ctx codes per step", DefaultValueFactory = _ => 4 };
        var seed = new Option<int>("--seed") { Description = "seeds the windows each step draws", DefaultValueFactory = _ => 0 };
        var resume = new Option<bool>("--resume") { Description = "continue the run saved in --out" };
        var saveEvery = new Option<int>("--save-every") { Description = "save the folder every this many steps (and at the end)", DefaultValueFactory = _ => 200 };
        var logEvery = new Option<int>("--log-every") { Description = "a progress line every this many steps", DefaultValueFactory = _ => 20 };
        var embedLayers = new Option<int?>("--embed-layers") { Description = "blocks the written encoder's embedding runs (default: the start folder's layers)" };
        var clips = ClipsOption();
        var split = SplitOption();
        var command = new Command("train-prior", "Train the top prior by next-code prediction on the clips' codes, as Jukebox trained its priors")
        {
            encoder, audio, output, steps, lr, warmup, batch, seed, resume, saveEvery, logEvery, embedLayers, clips, split,
        };
        command.SetAction((parse, ct) => CliErrors.Run(() =>
        {
            var options = new PriorTrainingOptions
            {
                LearningRate = parse.GetValue(lr), WarmupSteps = parse.GetValue(warmup), Batch = parse.GetValue(batch), Seed = parse.GetValue(seed),
            };
            try
            {
                options.Validate();
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new UsageException(e.Message);
            }
            return RunTrainPrior(parse.GetValue(encoder)!, parse.GetValue(audio)!, parse.GetValue(output)!, parse.GetValue(steps), options,
                parse.GetValue(resume), parse.GetValue(saveEvery), parse.GetValue(logEvery), parse.GetValue(embedLayers), parse.GetValue(clips),
                parse.GetValue(split)!, ct);
        }));
        return command;
    }

    private static int RunInitCodebook(string folder, string audio, string output, int? clips, string split, int seed, int passes, CancellationToken ct)
    {
        if (passes < 0) throw new UsageException("--kmeans cannot be negative");
        var clock = Stopwatch.StartNew();
        using JukeboxEncoder encoder = JukeboxEncoderLoader.Load(folder, ct: ct);
        int bins = encoder.Config.Vqvae.CodebookSize;
        var (train, _) = ClipSource.List(audio, split, clips);
        using var scope = NewDisposeScope();
        Tensor x = cat([.. Prepared(encoder, train, "encode", ct).Select(a => encoder.EncoderOutputs(a))], 0);
        double encodeSeconds = clock.Elapsed.TotalSeconds;

        Tensor before = encoder.Codebook();
        Console.WriteLine(Describe("before", CodeUsage.Of(CodebookInit.Nearest(x, before), bins)));
        using var generator = new Generator((ulong)seed);
        Tensor codebook = CodebookInit.FromSamples(x, bins, generator);
        Console.WriteLine(Describe("init_k", CodeUsage.Of(CodebookInit.Nearest(x, codebook), bins)));
        for (int pass = 1; pass <= passes; pass++)
        {
            ct.ThrowIfCancellationRequested();
            codebook = CodebookInit.Refine(x, codebook, generator);
            Console.WriteLine(Describe($"k-means {pass}", CodeUsage.Of(CodebookInit.Nearest(x, codebook), bins)));
        }
        CodebookInit.WriteFolder(folder, output, encoder.Config.Vqvae, codebook);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"wrote {output}: codebook [{bins}, {encoder.Config.Vqvae.EmbWidth}] from {x.shape[0]} encoder outputs of {train.Count} clips " +
            $"(encode {encodeSeconds:F1} s, all {clock.Elapsed.TotalSeconds:F1} s)"));
        return ExitCodes.Ok;
    }

    private static string Describe(string what, CodeUsage usage) => string.Create(CultureInfo.InvariantCulture,
        $"{what,-10} codes used {usage.Used}/{usage.Bins}, perplexity {usage.Perplexity:F1} on {usage.Frames} frames");

    private static int RunTrainPrior(string folder, string audio, string output, int steps, PriorTrainingOptions options, bool resume,
        int saveEvery, int logEvery, int? embedLayers, int? clips, string split, CancellationToken ct)
    {
        CheckRun(output, PriorTrainer.StateFileName, resume, steps, saveEvery, logEvery, "prior");
        var clock = Stopwatch.StartNew();
        using PriorTrainer trainer = PriorTrainer.Open(resume ? output : folder, options, embedLayers, loadState: resume);
        JukeboxEncoderConfig config = trainer.Config;
        var (train, heldOut) = ClipSource.List(audio, split, clips);
        var data = new PriorTrainingData(Prepared(trainer.Encoder, train, "codes", ct).Select(a => trainer.Encoder.Codes(a)).ToList(), config.Prior.NCtx);
        using Tensor evalWindows = heldOut.Count > 0
            ? new PriorTrainingData(Prepared(trainer.Encoder, heldOut.Take(16).ToList(), "held-out codes", ct).Select(a => trainer.Encoder.Codes(a)).ToList(),
                config.Prior.NCtx).FirstWindows(16)
            : data.FirstWindows(16);
        string evalName = heldOut.Count > 0 ? "held-out" : "training";
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv,
            $"prior: {config.Layers} blocks of width {config.Prior.Width}, n_ctx {config.Prior.NCtx}, blocks of {config.Prior.BlockCtx}, " +
            $"{config.Vqvae.CodebookSize} codes; embedding after block {trainer.EmbedLayers}; {data.Clips} clips, batch {options.Batch}; " +
            $"start step {trainer.Step} (setup {clock.Elapsed.TotalSeconds:F1} s)"));
        Console.WriteLine(string.Create(inv, $"step {trainer.Step}: {evalName} loss {trainer.Loss(evalWindows):F3} bits/code on {evalWindows.shape[0]} windows"));

        var rate = Stopwatch.StartNew();
        int first = trainer.Step;
        double lossSum = 0;
        int lossCount = 0;
        while (trainer.Step < steps)
        {
            ct.ThrowIfCancellationRequested();
            using (var scope = NewDisposeScope())
            {
                (double loss, double norm) = trainer.TrainStep(data.Batch(trainer.Step, options.Batch, options.Seed));
                lossSum += loss;
                lossCount++;
                if (trainer.Step % logEvery == 0 || trainer.Step == steps)
                {
                    double perStep = rate.Elapsed.TotalSeconds / (trainer.Step - first);
                    Console.WriteLine(string.Create(inv,
                        $"step {trainer.Step}/{steps}: loss {lossSum / lossCount:F3} bits/code, grad norm {norm:F2}, {1 / perStep:F2} steps/s, " +
                        $"ETA {TimeSpan.FromSeconds(perStep * (steps - trainer.Step)):h\\:mm\\:ss}"));
                    lossSum = 0;
                    lossCount = 0;
                }
            }
            if (trainer.Step % saveEvery == 0 || trainer.Step == steps)
            {
                trainer.Save(output, resume ? output : folder);
                Console.WriteLine(string.Create(inv, $"step {trainer.Step}: saved {output}; {evalName} loss {trainer.Loss(evalWindows):F3} bits/code"));
            }
        }
        Console.WriteLine(string.Create(inv, $"done: {trainer.Step - first} steps in {rate.Elapsed.TotalSeconds:F1} s ({clock.Elapsed.TotalSeconds:F1} s with setup)"));
        return ExitCodes.Ok;
    }

    /// <summary>Each clip decoded, made 44.1 kHz mono and peak-normalised, whole (not cut to one context).</summary>
    private static IEnumerable<float[]> Prepared(JukeboxEncoder encoder, IReadOnlyList<string> paths, string label, CancellationToken ct) =>
        PreparedClips(encoder.Config.Prior.SampleRate, paths, label, ct);

    private static IEnumerable<float[]> PreparedClips(int sampleRate, IReadOnlyList<string> paths, string label, CancellationToken ct)
    {
        var progress = new ProgressLine(label, paths.Count);
        foreach (string path in paths)
        {
            ct.ThrowIfCancellationRequested();
            PreparedAudio audio = AudioFrontEnd.Prepare(EmbedCommand.ReadClip(path), sampleRate, int.MaxValue);
            progress.Advance(1);
            yield return audio.Samples;
        }
        progress.Finish();
    }
}

/// <summary>The clips of a folder or a manifest, split into those to use and the held-out rest.</summary>
internal static class ClipSource
{
    private static readonly string[] Extensions = [".wav", ".mp3", ".ogg"];

    public static (IReadOnlyList<string> Use, IReadOnlyList<string> HeldOut) List(string audio, string split, int? limit)
    {
        if (limit is < 1) throw new UsageException("--clips must be at least 1");
        List<string> use, heldOut = [];
        if (File.Exists(audio))
        {
            Manifest manifest = Manifest.Load(audio);
            foreach (JsonLineError e in manifest.Errors) Console.Error.WriteLine($"skipped: {e}");
            use = [.. manifest.Clips.Where(c => c.Split is null || c.Split == split).Select(manifest.AudioPath)];
            heldOut = [.. manifest.Clips.Where(c => c.Split is not null && c.Split != split).Select(manifest.AudioPath)];
        }
        else if (Directory.Exists(audio))
        {
            use = [.. Directory.EnumerateFiles(audio, "*", SearchOption.AllDirectories)
                .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                .Order(StringComparer.Ordinal)];
        }
        else
        {
            throw new FileNotFoundException($"--audio: no such folder or manifest: {audio}", audio);
        }
        if (limit is int n && use.Count > n) use = use[..n];
        if (use.Count == 0) throw new UsageException($"--audio {audio}: no clips" + (File.Exists(audio) ? $" in split '{split}'" : ""));
        return (use, heldOut);
    }
}
