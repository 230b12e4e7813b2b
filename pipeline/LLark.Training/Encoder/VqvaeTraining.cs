using System.Globalization;
using LLark.Checkpoints;
using LLark.Encoder.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;
using static LLark.Checkpoints.KeptScalars;

namespace LLark.Training.Encoder;

/// <summary>
/// How <see cref="VqvaeTrainer"/> trains. The loss weights and the bottleneck's constants are Jukebox's 5b VQ-VAE hps
/// (<c>commit</c> 0.02, <c>multispectral</c> 1.0, <c>loss_fn</c> lmix with <c>lmix_l2</c> 1.0 and <c>lmix_linf</c> 0.02
/// over the top <c>linf_k</c> 2048 squared errors, <c>l_mu</c> 0.99, <c>revival_threshold</c> 1.0, the multispectral
/// STFTs n_fft 2048/1024/512 with hops 240/120/50 and windows 1200/600/240); the optimiser is Jukebox's Adam
/// (<see cref="EncoderTrainingOptions"/>). The seed also draws the decoder's init and the codebook's samples.
/// </summary>
public sealed record VqvaeTrainingOptions : EncoderTrainingOptions
{
    /// <summary>Audio windows per step; default 8.</summary>
    public override int Batch { get; init; } = 8;

    /// <summary>Samples per window (Jukebox's <c>sample_length</c>); a multiple of the hop length. Default 32768 (0.74 s at 44.1 kHz).</summary>
    public int SampleLength { get; init; } = 32768;

    /// <summary>Weight of the commitment loss |x − sg(k)|²; default 0.02.</summary>
    public double Commit { get; init; } = 0.02;

    /// <summary>Weight of the multi-resolution spectral loss; default 1.0.</summary>
    public double Multispectral { get; init; } = 1.0;

    /// <summary>Weight of the largest-errors term in the lmix reconstruction loss; default 0.02.</summary>
    public double LinfWeight { get; init; } = 0.02;

    /// <summary>Squared errors per window the linf term averages (the largest ones); default 2048.</summary>
    public int LinfK { get; init; } = 2048;

    /// <summary>EMA decay of the codebook's running sums and counts; default 0.99.</summary>
    public double Mu { get; init; } = 0.99;

    /// <summary>A code whose running count falls below this restarts at a random encoder output; default 1.0.</summary>
    public double Threshold { get; init; } = 1.0;

    public override void Validate()
    {
        base.Validate();
        if (SampleLength < 4096) throw new ArgumentOutOfRangeException(nameof(SampleLength), SampleLength, "the window must be at least 4096 samples");
        if (LinfK < 1 || LinfK > SampleLength) throw new ArgumentOutOfRangeException(nameof(LinfK), LinfK, "linf_k must be between 1 and the window length");
        if (!(Mu >= 0 && Mu < 1)) throw new ArgumentOutOfRangeException(nameof(Mu), Mu, "the EMA decay must be in [0, 1)");
        if (Commit < 0 || Multispectral < 0 || LinfWeight < 0) throw new ArgumentOutOfRangeException(nameof(Commit), "loss weights cannot be negative");
    }
}

/// <summary>
/// Jukebox's <c>bandwidth</c>: the scales its VQ-VAE losses are divided by, measured on the training audio as
/// <c>calculate_bandwidth</c> measures them (the variance of the samples; the mean Frobenius norm of a window's
/// default STFT, n_fft 1024, hop 256, window 1024).
/// </summary>
public sealed record VqvaeBandwidth(double L2, double Spec)
{
    /// <summary>Measured over windows [N, T] of the training audio.</summary>
    public static VqvaeBandwidth Measure(Tensor windows)
    {
        ArgumentNullException.ThrowIfNull(windows);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor x = windows.to(ScalarType.Float64);
        // total_sq / n − mean², the population variance.
        double mean = x.mean().item<double>();
        double l2 = x.pow(Two).mean().item<double>() - mean * mean;
        double spec = VqvaeLosses.Norm(VqvaeLosses.Magnitude(windows, 1024, 256, 1024)).mean().item<float>();
        return new VqvaeBandwidth(l2, spec);
    }
}

/// <summary>The terms of Jukebox's VQ-VAE loss, each as its <c>vqvae.py</c> and <c>audio_utils.py</c> compute it.</summary>
public static class VqvaeLosses
{
    /// <summary>The multispectral loss's STFTs: (n_fft, hop, window).</summary>
    public static readonly IReadOnlyList<(int NFft, int Hop, int Window)> Resolutions = [(2048, 240, 1200), (1024, 120, 600), (512, 50, 240)];

    /// <summary>|STFT| of audio [N, T] with a Hann window, centred and reflect-padded as torch.stft does: [N, freq, frames].</summary>
    public static Tensor Magnitude(Tensor audio, int nFft, int hop, int window)
    {
        using var scope = NewDisposeScope();
        using Tensor hann = hann_window(window, dtype: audio.dtype, device: audio.device);
        return stft(audio, nFft, hop, window, hann, center: true, pad_mode: PaddingModes.Reflect, return_complex: true)
            .abs().MoveToOuterDisposeScope();
    }

    /// <summary>Each row's L2 norm over every other dimension: [N, ...] to [N].</summary>
    public static Tensor Norm(Tensor x) => x.reshape(x.shape[0], -1).pow(Two).sum(-1).sqrt();

    /// <summary>mean over the batch of the mean over the resolutions of ‖|STFT(x)| − |STFT(y)|‖, divided by the spec bandwidth.</summary>
    public static Tensor Multispectral(Tensor target, Tensor output, double specBandwidth)
    {
        using var scope = NewDisposeScope();
        // Scalars that outlive the native calls reading them (see LLark.Checkpoints.KeptScalars).
        using Scalar count = ((double)Resolutions.Count).ToScalar(), bandwidth = specBandwidth.ToScalar();
        Tensor sum = zeros(target.shape[0], device: target.device);
        foreach ((int nFft, int hop, int window) in Resolutions)
            sum = sum.add(Norm(Magnitude(target, nFft, hop, window).sub(Magnitude(output, nFft, hop, window))), One);
        return sum.div(count).mean().div(bandwidth).MoveToOuterDisposeScope();
    }

    /// <summary>lmix: the mean squared error, plus <paramref name="linfWeight"/> times the mean of each window's k largest squared errors, over the l2 bandwidth.</summary>
    public static Tensor Reconstruction(Tensor target, Tensor output, double l2Bandwidth, double linfWeight, int linfK)
    {
        using var scope = NewDisposeScope();
        using Scalar bandwidth = l2Bandwidth.ToScalar(), weight = linfWeight.ToScalar();
        Tensor squared = output.sub(target).pow(Two);
        Tensor loss = squared.mean().div(bandwidth);
        if (linfWeight > 0)
        {
            Tensor top = squared.reshape(target.shape[0], -1).topk(linfK, dim: 1).values;
            loss = loss.add(top.mean().div(bandwidth).mul(weight), One);
        }
        return loss.MoveToOuterDisposeScope();
    }
}

/// <summary>Audio windows for VQ-VAE training, drawn from whole clips.</summary>
public sealed class VqvaeTrainingData
{
    private readonly float[][] clips;

    /// <param name="clips">Prepared clips (44.1 kHz mono, peak-normalised); one shorter than a window is zero-padded to it.</param>
    /// <param name="sampleLength">Samples per window.</param>
    public VqvaeTrainingData(IReadOnlyList<float[]> clips, int sampleLength)
    {
        ArgumentNullException.ThrowIfNull(clips);
        if (clips.Count == 0) throw new ArgumentException("no clips to train on", nameof(clips));
        SampleLength = sampleLength;
        this.clips = [.. clips.Select(c => c.Length >= sampleLength ? c : [.. c, .. new float[sampleLength - c.Length]])];
    }

    public int SampleLength { get; }

    public int Clips => clips.Length;

    /// <summary>Windows of step <paramref name="step"/>: a random clip and a random start each, from (seed, step) alone. float32 [batch, sample_length].</summary>
    public Tensor Batch(int step, int batch, int seed)
    {
        var random = new Random(unchecked(seed * 1_000_003 + step));
        var values = new float[(long)batch * SampleLength];
        for (int b = 0; b < batch; b++)
        {
            float[] clip = clips[random.Next(clips.Length)];
            int start = random.Next(clip.Length - SampleLength + 1);
            Array.Copy(clip, start, values, (long)b * SampleLength, SampleLength);
        }
        return tensor(values, [batch, SampleLength]);
    }

    /// <summary>Consecutive windows from the start of each clip, at most <paramref name="max"/>, for the bandwidth and a fixed evaluation.</summary>
    public Tensor Windows(int max)
    {
        var rows = new List<float[]>();
        foreach (float[] clip in clips)
            for (int at = 0; at + SampleLength <= clip.Length && rows.Count < max; at += SampleLength)
                rows.Add(clip[at..(at + SampleLength)]);
        var values = new float[(long)rows.Count * SampleLength];
        for (int i = 0; i < rows.Count; i++)
            Array.Copy(rows[i], 0, values, (long)i * SampleLength, SampleLength);
        return tensor(values, [rows.Count, SampleLength]);
    }
}

/// <summary>What one VQ-VAE step measured: the loss and its terms before the update, and the codebook's use.</summary>
public sealed record VqvaeStepMetrics(double Loss, double Reconstruction, double Multispectral, double Commit, double GradNorm, int CodesUsed, double Perplexity);

/// <summary>
/// Trains the top level of a Jukebox VQ-VAE as Jukebox trains its levels: the top encoder, the bottleneck and the top
/// decoder (<c>decoders.{top}</c>, which LLark never runs), with Jukebox's loss (lmix reconstruction over the l2
/// bandwidth, multispectral over the spec bandwidth, commitment) and its EMA codebook: initialised from the first
/// batch's encoder outputs (<c>init_k</c>), then moved by running sums and counts with decay mu, and a code whose count
/// falls below the threshold restarts at a random encoder output of the batch. The straight-through estimator carries
/// the decoder's gradient to the encoder. The folder it writes is a complete encoder folder: the VQ-VAE file holds the
/// trained encoder, codebook and decoder under Jukebox's names, beside the start folder's prior and config; the
/// training state (Adam's moments, the codebook's sums and counts, the bandwidth) goes in <see cref="StateFileName"/>.
/// </summary>
public sealed class VqvaeTrainer : IDisposable
{
    static VqvaeTrainer() => LLark.Checkpoints.LibTorchEnvironment.RequestReproducibleMath();

    public const string StateFileName = "vqvae_train_state.safetensors";

    private const string KSumName = "bottleneck/k_sum";
    private const string KElemName = "bottleneck/k_elem";

    private readonly VqvaeTopEncoder encoder;
    private readonly VqvaeTopDecoder decoder;
    private readonly EncoderOptimizer optimizer;
    private readonly VqvaeTrainingOptions options;
    private readonly Tensor kSum;
    private readonly Tensor kElem;
    private bool initialised;

    private VqvaeTrainer(JukeboxEncoderConfig config, VqvaeTopEncoder encoder, VqvaeTopDecoder decoder, VqvaeTrainingOptions options)
    {
        Config = config;
        this.encoder = encoder;
        this.decoder = decoder;
        this.options = options;
        string codebook = CodebookName(config.Vqvae);
        optimizer = new EncoderOptimizer(encoder.CheckpointParameters().Where(p => p.Key != codebook)
            .Concat(decoder.CheckpointParameters()).Select(p => new TrainedTensor(p.Key, p.Value)), options);
        kSum = zeros(config.Vqvae.CodebookSize, config.Vqvae.EmbWidth);
        kElem = zeros(config.Vqvae.CodebookSize);
    }

    public JukeboxEncoderConfig Config { get; }

    public int Step => optimizer.Step;

    /// <summary>The loss scales; set from the training audio before the first step (or restored with the state).</summary>
    public VqvaeBandwidth? Bandwidth { get; set; }

    /// <summary>Parameters trained: the top encoder's convs and the top decoder's.</summary>
    public long TrainedParameters => optimizer.Parameters.Sum(p => p.Tensor.NumberOfElements);

    private static string CodebookName(VqvaeConfig config) => $"bottleneck.level_blocks.{config.TopLevel}.k";

    /// <summary>
    /// Opens an encoder folder for training its VQ-VAE's top level. The encoder starts from the folder's weights; the
    /// decoder from the folder's VQ-VAE file when it holds one (a trained VQ-VAE, whose codebook is then kept as
    /// Jukebox's <c>restore_k</c> keeps it), else from PyTorch's default conv init drawn from
    /// <see cref="EncoderTrainingOptions.Seed"/> (and the codebook is drawn from the first batch, <c>init_k</c>). With <paramref name="loadState"/>, the step, Adam's moments, the
    /// codebook's running sums and the bandwidth are restored from the folder's <see cref="StateFileName"/>.
    /// </summary>
    public static VqvaeTrainer Open(string folder, VqvaeTrainingOptions options, bool loadState = false)
    {
        ArgumentNullException.ThrowIfNull(options);
        string configPath = Path.Combine(folder, JukeboxEncoderLoader.ConfigFileName);
        if (!File.Exists(configPath))
            throw new CheckpointException($"{folder} holds no {JukeboxEncoderLoader.ConfigFileName}: train-vqvae needs a convert-jukebox folder");
        JukeboxEncoderConfig config = JukeboxEncoderConfig.FromJson(File.ReadAllText(configPath), configPath);
        options.Validate();
        if (options.SampleLength % config.Vqvae.HopLength != 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.SampleLength, $"the window of {options.SampleLength} samples is not a multiple of the hop length {config.Vqvae.HopLength}");
        string vqvaePath = Path.Combine(folder, JukeboxEncoderLoader.ConvertedVqvaeFileName);
        var encoder = new VqvaeTopEncoder(config.Vqvae, CPU);
        var decoder = new VqvaeTopDecoder(config.Vqvae, CPU);
        VqvaeTrainer? trainer = null;
        bool trained;
        try
        {
            using (var source = new SafetensorsFile(vqvaePath))
            {
                var encoderParameters = encoder.CheckpointParameters();
                StrictLoader.Load(encoderParameters, source, name => !encoderParameters.ContainsKey(name));
                var decoderParameters = decoder.CheckpointParameters();
                trained = decoderParameters.Keys.All(source.Entries.ContainsKey);
                if (trained)
                    StrictLoader.Load(decoderParameters, source, name => !decoderParameters.ContainsKey(name));
                else if (loadState)
                    throw new CheckpointException($"{vqvaePath} holds no decoder to resume");
                else
                    DefaultInit(decoderParameters, options.Seed);
            }
            trainer = new VqvaeTrainer(config, encoder, decoder, options);
            if (loadState)
                trainer.LoadState(Path.Combine(folder, StateFileName), vqvaePath);
            else if (trained)
                trainer.RestoreCodebook();
            return trainer;
        }
        catch
        {
            if (trainer is not null) trainer.Dispose();
            else
            {
                encoder.Dispose();
                decoder.Dispose();
            }
            throw;
        }
    }

    /// <summary>nn.Conv1d's and nn.ConvTranspose1d's reset_parameters: weight and bias U(−1/√fan_in, 1/√fan_in).</summary>
    private static void DefaultInit(IReadOnlyDictionary<string, Tensor> parameters, int seed)
    {
        using var generator = new Generator((ulong)seed + 7919);
        using var noGrad = no_grad();
        var weights = parameters.Where(p => p.Key.EndsWith(".weight", StringComparison.Ordinal)).ToDictionary(p => p.Key[..^".weight".Length], p => p.Value);
        foreach ((string name, Tensor value) in parameters.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            Tensor weight = weights[name[..name.LastIndexOf('.')]];
            // Conv1d weight [out, in, k] has fan_in in·k; ConvTranspose1d weight [in, out, k] has out·k (PyTorch's rule for dim 1).
            long fanIn = weight.shape[1] * weight.shape[2];
            double bound = 1.0 / Math.Sqrt(fanIn);
            using Tensor drawn = rand(value.shape, generator: generator);
            using Scalar width = (2 * bound).ToScalar(), low = bound.ToScalar();
            value.copy_(drawn.mul_(width).sub_(low));
        }
    }

    /// <summary>One step on audio windows [N, T]: returns the loss and its terms before the update.</summary>
    public VqvaeStepMetrics TrainStep(Tensor audio)
    {
        if (Bandwidth is null) throw new InvalidOperationException("set the bandwidth from the training audio before training");
        using var scope = NewDisposeScope();
        Terms terms;
        IList<Tensor> grads;
        using (enable_grad())
        {
            terms = Forward(audio, updateCodebook: true);
            grads = optimizer.Gradients(terms.Loss);
        }
        double norm = optimizer.Apply(grads);
        CodeUsage usage = CodeUsage.Of(terms.Codes, Config.Vqvae.CodebookSize);
        return new VqvaeStepMetrics(terms.Loss.item<float>(), terms.Reconstruction.item<float>(), terms.Multispectral.item<float>(),
            terms.Commit.item<float>(), norm, usage.Used, usage.Perplexity);
    }

    /// <summary>The loss terms on windows [N, T] without gradients or codebook updates; the codes' use beside them.</summary>
    public VqvaeStepMetrics Evaluate(Tensor audio)
    {
        if (Bandwidth is null) throw new InvalidOperationException("set the bandwidth first");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Terms terms = Forward(audio, updateCodebook: false);
        CodeUsage usage = CodeUsage.Of(terms.Codes, Config.Vqvae.CodebookSize);
        return new VqvaeStepMetrics(terms.Loss.item<float>(), terms.Reconstruction.item<float>(), terms.Multispectral.item<float>(),
            terms.Commit.item<float>(), 0, usage.Used, usage.Perplexity);
    }

    private sealed record Terms(Tensor Loss, Tensor Reconstruction, Tensor Multispectral, Tensor Commit, Tensor Codes);

    private Terms Forward(Tensor audio, bool updateCodebook)
    {
        VqvaeBandwidth bandwidth = Bandwidth!;
        long n = audio.shape[0];
        Tensor encoded = encoder.EncodeContinuous(audio);
        long frames = encoded.shape[2], width = encoded.shape[1];
        Tensor x = VqvaeTopEncoder.Rows(encoded);
        if (updateCodebook && !initialised)
            InitCodebook(x);
        Tensor codes, dequantised;
        using (no_grad())
        {
            codes = VqvaeTopEncoder.NearestCodes(x, encoder.Codebook);
            dequantised = encoder.Codebook.index_select(0, codes);
        }
        if (updateCodebook)
            UpdateCodebook(x.detach(), codes);
        using Scalar elements = ((double)x.NumberOfElements).ToScalar(), spectral = options.Multispectral.ToScalar(), commitWeight = options.Commit.ToScalar();
        Tensor commit = dequantised.sub(x).pow(Two).sum().div(elements);
        // Straight through: the decoder sees the codes' vectors, the encoder gets the decoder's gradient.
        Tensor passed = x.add(dequantised.sub(x).detach(), One);
        Tensor quantised = passed.view(n, frames, width).permute(0, 2, 1);
        Tensor output = decoder.Forward(quantised);
        Tensor reconstruction = VqvaeLosses.Reconstruction(audio, output, bandwidth.L2, options.LinfWeight, options.LinfK);
        Tensor multispectral = VqvaeLosses.Multispectral(audio, output, bandwidth.Spec);
        Tensor loss = reconstruction.add(multispectral.mul(spectral), One).add(commit.mul(commitWeight), One);
        return new Terms(loss, reconstruction, multispectral, commit, codes.view(n, frames));
    }

    private Generator StepGenerator() => new((ulong)unchecked((uint)(options.Seed * 1_000_003 + Step)) + 104729);

    /// <summary>init_k: the codes become a random sample of the batch's encoder outputs; every running count starts at 1.</summary>
    private void InitCodebook(Tensor x)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using Generator generator = StepGenerator();
        Tensor k = CodebookInit.FromSamples(x.detach(), Config.Vqvae.CodebookSize, generator);
        encoder.SetCodebook(k);
        kSum.copy_(k);
        kElem.fill_(One);
        initialised = true;
    }

    /// <summary>
    /// restore_k: a new run from a trained VQ-VAE keeps its codebook instead of drawing one from the first batch. As
    /// Jukebox's <c>make_vqvae</c> restores it, every running count starts at the expected use of a code in one step
    /// (tokens per step / k_bins) and every running sum at the code times that.
    /// </summary>
    private void RestoreCodebook()
    {
        using var noGrad = no_grad();
        double tokensPerStep = (double)options.Batch * options.SampleLength / Config.Vqvae.HopLength;
        double expected = tokensPerStep / Config.Vqvae.CodebookSize;
        using Scalar count = expected.ToScalar();
        kSum.copy_(encoder.Codebook).mul_(count);
        kElem.fill_(count);
        initialised = true;
    }

    /// <summary>update_k: EMA of each code's sum and count of the outputs nearest to it; codes used too little restart at a random output.</summary>
    private void UpdateCodebook(Tensor x, Tensor codes)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using Generator generator = StepGenerator();
        Tensor random = CodebookInit.FromSamples(x, Config.Vqvae.CodebookSize, generator);
        encoder.SetCodebook(EmaUpdate(kSum, kElem, x, codes, options.Mu, options.Threshold, random));
    }

    /// <summary>
    /// Jukebox's <c>update_k</c> arithmetic: k_sum ← mu·k_sum + (1 − mu)·Σ x over each code's outputs, k_elem ← mu·k_elem +
    /// (1 − mu)·count (both in place); returns the new codebook, k_sum / k_elem where k_elem ≥ threshold, else the row of
    /// <paramref name="random"/>.
    /// </summary>
    internal static Tensor EmaUpdate(Tensor kSum, Tensor kElem, Tensor x, Tensor codes, double mu, double threshold, Tensor random)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long bins = kSum.shape[0];
        using Scalar keep = mu.ToScalar(), rest = (1 - mu).ToScalar(), least = threshold.ToScalar();
        Tensor sums = zeros(bins, x.shape[1], dtype: x.dtype).index_add_(0, codes, x, One);
        Tensor counts = codes.bincount(null, bins).to(x.dtype);
        kSum.mul_(keep).add_(sums, alpha: rest);
        kElem.mul_(keep).add_(counts, alpha: rest);
        Tensor used = kElem.ge(least).unsqueeze(1);
        return where(used, kSum.div(kElem.unsqueeze(1)), random).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Writes a complete encoder folder: the VQ-VAE file (trained encoder, codebook and decoder, float32, Jukebox's
    /// names), the prior and config of <paramref name="priorFrom"/>, and the training state last; each file appears
    /// whole, and both safetensors files record the step.
    /// </summary>
    public void Save(string folder, string priorFrom)
    {
        Directory.CreateDirectory(folder);
        string step = Step.ToString(CultureInfo.InvariantCulture);
        using var scope = NewDisposeScope();
        var tensors = encoder.CheckpointParameters().Concat(decoder.CheckpointParameters())
            .Select(p => new KeyValuePair<string, Tensor>(p.Key, p.Value.detach())).ToList();
        string vqvaePath = Path.Combine(folder, JukeboxEncoderLoader.ConvertedVqvaeFileName);
        SafetensorsWriter.Save(vqvaePath, tensors,
            new Dictionary<string, string> { ["format"] = "pt", ["source"] = "llark jukebox train-vqvae", ["step"] = step });
        foreach (string name in new[] { JukeboxEncoderLoader.ConvertedPriorFileName, JukeboxEncoderLoader.ConfigFileName })
        {
            string source = Path.Combine(priorFrom, name), target = Path.Combine(folder, name);
            if (!string.Equals(Path.GetFullPath(source), Path.GetFullPath(target), StringComparison.Ordinal))
                AtomicFile.Copy(source, target);
        }
        var state = optimizer.Entries().Append(new(KSumName, kSum)).Append(new(KElemName, kElem)).ToList();
        var inv = CultureInfo.InvariantCulture;
        string statePath = Path.Combine(folder, StateFileName);
        SafetensorsWriter.Save(statePath, state, new Dictionary<string, string>
        {
            ["format"] = "pt", ["step"] = step, ["seed"] = options.Seed.ToString(inv),
            ["bandwidth_l2"] = Bandwidth?.L2.ToString("R", inv) ?? "", ["bandwidth_spec"] = Bandwidth?.Spec.ToString("R", inv) ?? "",
            ["initialised"] = initialised ? "1" : "0",
        });
    }

    private void LoadState(string statePath, string vqvaePath)
    {
        using var state = new SafetensorsFile(statePath);
        using var vqvae = new SafetensorsFile(vqvaePath);
        int step = EncoderOptimizer.ResumedStep(state, vqvae, options.Seed);
        optimizer.Load(state);
        using (no_grad())
        {
            state.ReadInto(KSumName, kSum);
            state.ReadInto(KElemName, kElem);
        }
        var inv = CultureInfo.InvariantCulture;
        if (double.TryParse(state.Metadata.GetValueOrDefault("bandwidth_l2"), NumberStyles.Float, inv, out double l2)
            && double.TryParse(state.Metadata.GetValueOrDefault("bandwidth_spec"), NumberStyles.Float, inv, out double spec))
            Bandwidth = new VqvaeBandwidth(l2, spec);
        initialised = state.Metadata.GetValueOrDefault("initialised") == "1";
        optimizer.Step = step;
    }

    public void Dispose()
    {
        optimizer.Dispose();
        kSum.Dispose();
        kElem.Dispose();
        encoder.Dispose();
        decoder.Dispose();
    }
}
