using System.Globalization;
using LLark.Checkpoints;
using LLark.Encoder.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Training.Encoder;

/// <summary>How <see cref="PriorTrainer"/> optimises: Jukebox's <c>opt</c> defaults (<see cref="EncoderTrainingOptions"/>).</summary>
public sealed record PriorTrainingOptions : EncoderTrainingOptions
{
    /// <summary>Windows of n_ctx codes per step; default 4.</summary>
    public override int Batch { get; init; } = 4;
}

/// <summary>The training clips' top-level codes; every step draws windows of n_ctx codes from them.</summary>
public sealed class PriorTrainingData
{
    private readonly long[][] clips;

    /// <param name="clipCodes">Codes of each clip, each at least <paramref name="context"/> long (pad the audio to the context first).</param>
    /// <param name="context">The prior's n_ctx.</param>
    public PriorTrainingData(IReadOnlyList<long[]> clipCodes, int context)
    {
        ArgumentNullException.ThrowIfNull(clipCodes);
        if (clipCodes.Count == 0) throw new ArgumentException("no clips to train on", nameof(clipCodes));
        if (clipCodes.FirstOrDefault(c => c.Length < context) is { } shortClip)
            throw new ArgumentException($"a clip has {shortClip.Length} codes, fewer than the context of {context}", nameof(clipCodes));
        clips = [.. clipCodes];
        Context = context;
    }

    public int Context { get; }

    public int Clips => clips.Length;

    /// <summary>Windows of step <paramref name="step"/>: a random clip and a random start each, from (seed, step) alone. int64 [batch, n_ctx].</summary>
    public Tensor Batch(int step, int batch, int seed)
    {
        var random = new Random(unchecked(seed * 1_000_003 + step));
        var values = new long[(long)batch * Context];
        for (int b = 0; b < batch; b++)
        {
            long[] clip = clips[random.Next(clips.Length)];
            int start = random.Next(clip.Length - Context + 1);
            Array.Copy(clip, start, values, (long)b * Context, Context);
        }
        return tensor(values, [batch, Context]);
    }

    /// <summary>The first window of each clip (what the embedding sees), for a fixed evaluation. int64 [clips, n_ctx].</summary>
    public Tensor FirstWindows(int maxClips)
    {
        int n = Math.Min(maxClips, clips.Length);
        var values = new long[(long)n * Context];
        for (int i = 0; i < n; i++)
            Array.Copy(clips[i], 0, values, (long)i * Context, Context);
        return tensor(values, [n, Context]);
    }
}

/// <summary>
/// Trains the top prior as Jukebox trained it: next-code prediction on VQ-VAE codes. The engine's own
/// <see cref="PriorPrefix"/> runs with gradients: codes shifted right behind the start (label) embedding, plus position
/// embedding and time conditioning, through every block of the checkpoint; the output head <c>prior.x_out</c> (a
/// Linear without bias, separate from <c>x_emb</c> and with no conditioning added after the transformer, as in the 5b
/// top prior's <c>merged_decoder=True</c>) gives logits over the codes. The loss is the cross-entropy in bits per code.
/// Optimiser: Adam with linear warm-up and global-norm clipping, its moments saved beside the weights so a run resumes
/// exactly where it stopped.
/// </summary>
public sealed class PriorTrainer : IDisposable
{
    static PriorTrainer() => LLark.Checkpoints.LibTorchEnvironment.RequestReproducibleMath();

    /// <summary>Adam's moments and the step, beside the encoder files of a training folder.</summary>
    public const string StateFileName = "train_state.safetensors";

    /// <summary>The top prior's output head [bins, width], in the prior checkpoint beside the blocks.</summary>
    public const string OutputHeadName = "prior.x_out.weight";

    /// <summary>Jukebox draws x_out from N(0, 0.02 · init_scale); the 5b top prior's init_scale is 0.1.</summary>
    private const double OutputHeadStd = 0.02 * 0.1;

    /// <summary>ln 2, kept (see <see cref="KeptScalars"/>): nats to bits in every loss.</summary>
    private static readonly Scalar Ln2 = Math.Log(2).ToScalar();

    private readonly JukeboxEncoder encoder;
    private readonly EncoderOptimizer optimizer;
    private readonly PriorTrainingOptions options;
    private readonly ConditioningLabels labels;
    private readonly Tensor outputHead;

    private PriorTrainer(JukeboxEncoder encoder, Tensor outputHead, int embedLayers, PriorTrainingOptions options)
    {
        this.encoder = encoder;
        this.options = options;
        EmbedLayers = embedLayers;
        labels = ConditioningLabels.ForExtraction(encoder.Config);
        this.outputHead = outputHead;
        optimizer = new EncoderOptimizer(encoder.Prior.CheckpointParameters().Select(p => new TrainedTensor(p.Key, p.Value))
            .Append(new TrainedTensor(OutputHeadName, outputHead)), options);
    }

    /// <summary>Blocks trained (every block the prior file holds) and the config they run with.</summary>
    public JukeboxEncoderConfig Config => encoder.Config;

    /// <summary>Blocks the embedding of the written folder runs (its <c>jukebox_encoder.json</c> layers).</summary>
    public int EmbedLayers { get; }

    /// <summary>Optimiser steps taken so far.</summary>
    public int Step => optimizer.Step;

    /// <summary>The VQ-VAE the codes come from (frozen).</summary>
    public JukeboxEncoder Encoder => encoder;

    /// <summary>
    /// Opens an encoder folder (the <c>convert-jukebox</c> layout) for training every prior block its file holds. With
    /// <paramref name="loadState"/>, the step and Adam's moments are restored from the folder's <see cref="StateFileName"/>.
    /// </summary>
    public static PriorTrainer Open(string folder, PriorTrainingOptions options, int? embedLayers = null, bool loadState = false)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        string configPath = Path.Combine(folder, JukeboxEncoderLoader.ConfigFileName);
        if (!File.Exists(configPath))
            throw new CheckpointException($"{folder} holds no {JukeboxEncoderLoader.ConfigFileName}: train-prior needs a convert-jukebox folder");
        JukeboxEncoderConfig config = JukeboxEncoderConfig.FromJson(File.ReadAllText(configPath), configPath);
        string priorPath = Path.Combine(folder, JukeboxEncoderLoader.ConvertedPriorFileName);
        int blocks;
        using (ITensorSource prior = JukeboxEncoderLoader.Open(priorPath))
            blocks = JukeboxEncoderLoader.CountBlocks(prior);
        int embed = embedLayers ?? config.Layers;
        if (embed < 1 || embed > blocks)
            throw new EncoderConfigException($"{configPath}: the embedding must run between 1 and the {blocks} blocks of {priorPath}, not {embed}");
        JukeboxEncoder encoder = JukeboxEncoderLoader.Load(Path.Combine(folder, JukeboxEncoderLoader.ConvertedVqvaeFileName), priorPath,
            new JukeboxLoadOptions { Config = config with { Layers = blocks } });
        PriorTrainer trainer;
        try
        {
            trainer = new PriorTrainer(encoder, OutputHead(priorPath, encoder.Config, options.Seed), embed, options);
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
        try
        {
            if (loadState)
                trainer.LoadState(Path.Combine(folder, StateFileName), priorPath);
            return trainer;
        }
        catch
        {
            trainer.Dispose();
            throw;
        }
    }

    /// <summary>The checkpoint's <see cref="OutputHeadName"/> when it has one (a trained prior), else drawn as Jukebox initialises it.</summary>
    private static Tensor OutputHead(string priorPath, JukeboxEncoderConfig config, int seed)
    {
        int bins = config.Vqvae.CodebookSize, width = config.Prior.Width;
        Tensor head = zeros(bins, width);
        using ITensorSource prior = JukeboxEncoderLoader.Open(priorPath);
        if (prior.Entries.ContainsKey(OutputHeadName))
        {
            StrictLoader.Load(new Dictionary<string, Tensor> { [OutputHeadName] = head }, prior, name => name != OutputHeadName);
            return head;
        }
        using var generator = new Generator((ulong)seed);
        using Tensor drawn = randn([bins, width], generator: generator);
        using Scalar std = OutputHeadStd.ToScalar();
        head.copy_(drawn.mul_(std));
        return head;
    }

    /// <summary>Next-code loss in bits per code of codes int64 [N, n_ctx], without gradients.</summary>
    public double Loss(Tensor codes)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return NextCodeLoss(codes).item<float>();
    }

    /// <summary>One Adam step on codes int64 [N, n_ctx]; returns the loss (bits per code) before the update and the gradient norm.</summary>
    public (double Loss, double GradNorm) TrainStep(Tensor codes)
    {
        using var scope = NewDisposeScope();
        Tensor loss;
        IList<Tensor> grads;
        using (enable_grad())
        {
            loss = NextCodeLoss(codes);
            grads = optimizer.Gradients(loss);
        }
        double norm = optimizer.Apply(grads);
        return (loss.item<float>(), norm);
    }

    /// <summary>
    /// Writes a complete encoder folder: the trained prior (float32, with <see cref="OutputHeadName"/>), the VQ-VAE of
    /// <paramref name="vqvaeFrom"/>, the config with <see cref="EmbedLayers"/> layers, and the training state last. Each
    /// file appears whole (written beside, then renamed); both safetensors files record the step.
    /// </summary>
    public void Save(string folder, string vqvaeFrom)
    {
        Directory.CreateDirectory(folder);
        string step = Step.ToString(CultureInfo.InvariantCulture);
        using (var scope = NewDisposeScope())
        {
            var tensors = optimizer.Parameters.Select(p => new KeyValuePair<string, Tensor>(p.Name, p.Tensor.detach())).ToList();
            SafetensorsWriter.Save(Path.Combine(folder, JukeboxEncoderLoader.ConvertedPriorFileName), tensors,
                new Dictionary<string, string> { ["format"] = "pt", ["source"] = "llark jukebox train-prior", ["step"] = step });
        }
        string vqvaeTarget = Path.Combine(folder, JukeboxEncoderLoader.ConvertedVqvaeFileName);
        string vqvaeSource = Path.Combine(vqvaeFrom, JukeboxEncoderLoader.ConvertedVqvaeFileName);
        if (!string.Equals(Path.GetFullPath(vqvaeSource), Path.GetFullPath(vqvaeTarget), StringComparison.Ordinal))
            AtomicFile.Copy(vqvaeSource, vqvaeTarget);
        AtomicFile.WriteText(Path.Combine(folder, JukeboxEncoderLoader.ConfigFileName), (encoder.Config with { Layers = EmbedLayers }).ToJson());
        using (var scope = NewDisposeScope())
        {
            SafetensorsWriter.Save(Path.Combine(folder, StateFileName), [.. optimizer.Entries()],
                new Dictionary<string, string> { ["format"] = "pt", ["step"] = step, ["seed"] = options.Seed.ToString(CultureInfo.InvariantCulture) });
        }
    }

    private Tensor NextCodeLoss(Tensor codes)
    {
        using var scope = NewDisposeScope();
        PriorPrefix prior = encoder.Prior;
        int bins = encoder.Config.Vqvae.CodebookSize;
        (Tensor yCond, Tensor xCond) = prior.Conditioning(labels, (int)codes.shape[1]);
        Tensor h = prior.Forward(prior.Input(codes, yCond, xCond));
        Tensor logits = matmul(h, outputHead.t());
        return nn.functional.cross_entropy(logits.reshape(-1, bins), codes.reshape(-1)).div(Ln2).MoveToOuterDisposeScope();
    }

    private void LoadState(string statePath, string priorPath)
    {
        using var state = new SafetensorsFile(statePath);
        using var prior = new SafetensorsFile(priorPath);
        int step = EncoderOptimizer.ResumedStep(state, prior, options.Seed);
        optimizer.Load(state);
        optimizer.Step = step;
    }

    public void Dispose()
    {
        optimizer.Dispose();
        outputHead.Dispose();
        encoder.Dispose();
    }
}
