using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Encoder.Engine.Model;

/// <summary>How the clip meets the prior's fixed context.</summary>
public enum ExtractionPath
{
    /// <summary>
    /// LLark's: zero-pad the audio to the full context, encode and run all n_ctx codes, then keep the
    /// floor(n_ctx · len / context_samples) rows that real audio produced.
    /// </summary>
    LLarkPadded,

    /// <summary>jukemirlib's: encode only the audio there is and run the prior on those codes.</summary>
    Jukemirlib,
}

/// <summary>What <see cref="JukeboxEncoder.Embed"/> computes.</summary>
public sealed record EmbedOptions
{
    public ExtractionPath Path { get; init; } = ExtractionPath.LLarkPadded;

    /// <summary>Frames per second of the pooled output (25 by default: 13-token windows); null keeps every token.</summary>
    public double? Fps { get; init; } = 25;

    /// <summary>The label conditioning; null means <see cref="ConditioningLabels.ForExtraction"/> (unknown artist and genre, 62 s).</summary>
    public ConditioningLabels? Labels { get; init; }
}

/// <summary>A clip's embedding: <see cref="Frames"/> rows of <see cref="Width"/> float32 values, row-major.</summary>
public sealed record AudioEmbedding(float[] Values, int Frames, int Width, double FramesPerSecond, int Tokens);

/// <summary>
/// Jukebox-5B's top level as an audio encoder: VQ-VAE level-2 codes, then the prior's input embedding and first
/// N blocks, then windowed mean pooling. One instance owns its weights; calls must not overlap.
/// </summary>
public sealed class JukeboxEncoder : IDisposable
{
    internal JukeboxEncoder(JukeboxEncoderConfig config, VqvaeTopEncoder vqvae, PriorPrefix prior, Device device)
    {
        Config = config;
        Device = device;
        Vqvae = vqvae;
        Prior = prior;
    }

    public JukeboxEncoderConfig Config { get; }

    internal VqvaeTopEncoder Vqvae { get; }

    internal PriorPrefix Prior { get; }

    /// <summary>
    /// Embeds mono 44.1 kHz audio, already peak-normalised. Audio beyond the context (n_ctx × hop samples) is cut.
    /// </summary>
    public AudioEmbedding Embed(ReadOnlySpan<float> audio, EmbedOptions? options = null, CancellationToken ct = default)
    {
        options ??= new EmbedOptions();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return Pooled(Activations(audio, options.Path, options.Labels, ct), options);
    }

    /// <summary>
    /// Embeds several clips. On the LLark padded path every clip is padded to the full context, so they stack into one
    /// [N, context] batch and run as one forward pass; the jukemirlib path (each clip its own length) and a single
    /// clip run <see cref="Embed"/> one after another. Batching changes the shapes of the matrix products, so values
    /// may differ from one-at-a-time results in the last bits of float32.
    /// </summary>
    public IReadOnlyList<AudioEmbedding> EmbedBatch(IReadOnlyList<float[]> clips, EmbedOptions? options = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(clips);
        options ??= new EmbedOptions();
        if (clips.Count <= 1 || options.Path != ExtractionPath.LLarkPadded)
        {
            var each = new List<AudioEmbedding>(clips.Count);
            foreach (float[] clip in clips)
            {
                ct.ThrowIfCancellationRequested();
                each.Add(Embed(clip, options, ct));
            }
            return each;
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int hop = Config.Vqvae.HopLength;
        int context = Config.ContextSamples;
        var lengths = clips.Select(c => Math.Min(c.Length, context)).ToArray();
        if (lengths.Min() / hop < 1)
            throw new ArgumentException($"a clip has {lengths.Min()} samples, fewer than one code's {hop}", nameof(clips));
        Tensor wave = zeros(clips.Count, context, device: Device);
        for (int i = 0; i < clips.Count; i++)
        {
            using Tensor host = tensor(clips[i].AsSpan(0, lengths[i]).ToArray(), [lengths[i]]);
            wave[i].narrow(0, 0, lengths[i]).copy_(host);
        }
        Tensor codes = Vqvae.Encode(wave);
        ct.ThrowIfCancellationRequested();
        (Tensor yCond, Tensor xCond) = Prior.Conditioning(options.Labels ?? ConditioningLabels.ForExtraction(Config), (int)codes.shape[1]);
        Tensor h = Prior.Forward(Prior.Input(codes, yCond, xCond), null, ct);
        return [.. lengths.Select((length, i) => Pooled(h[i].narrow(0, 0, length / hop), options))];
    }

    /// <summary>[tokens, width] activations, pooled to the options' frame rate, copied out of the tensor.</summary>
    private AudioEmbedding Pooled(Tensor activations, EmbedOptions options)
    {
        using var scope = NewDisposeScope();
        int tokens = (int)activations.shape[0];
        double fps = Config.TokensPerSecond;
        if (options.Fps is double wanted)
        {
            int window = Pooling.Window(Config.TokensPerSecond, wanted);
            activations = Pooling.WindowedMean(activations, window);
            fps = Config.TokensPerSecond / window;
        }
        Tensor result = activations.contiguous();
        var values = new float[result.NumberOfElements];
        result.data<float>().CopyTo(values, 0);
        return new AudioEmbedding(values, (int)result.shape[0], (int)result.shape[1], fps, tokens);
    }

    /// <summary>The residual stream after the last block for the clip's own positions: [T, width].</summary>
    internal Tensor Activations(ReadOnlySpan<float> audio, ExtractionPath path, ConditioningLabels? labels, CancellationToken ct,
        Action<int, Tensor>? afterBlock = null)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int hop = Config.Vqvae.HopLength;
        int context = Config.ContextSamples;
        if (audio.Length > context)
            audio = audio[..context];
        int tokens = audio.Length / hop;
        if (tokens < 1)
            throw new ArgumentException($"the clip has {audio.Length} samples, fewer than one code's {hop}", nameof(audio));

        Device device = Device;
        Tensor wave = path == ExtractionPath.LLarkPadded
            ? zeros(1, context, device: device)
            : empty(1, audio.Length, device: device);
        using (Tensor host = tensor(audio.ToArray(), [1, audio.Length]))
            wave.narrow(1, 0, audio.Length).copy_(host);

        Tensor codes = Vqvae.Encode(wave);
        ct.ThrowIfCancellationRequested();
        int length = (int)codes.shape[1];
        (Tensor yCond, Tensor xCond) = Prior.Conditioning(labels ?? ConditioningLabels.ForExtraction(Config), length);
        Tensor h = Prior.Forward(Prior.Input(codes, yCond, xCond), afterBlock, ct);
        return h[0].narrow(0, 0, tokens).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The top-level encoder's output vectors before quantisation, [T, emb_width], for the audio zero-padded to at least
    /// one context as the LLark path encodes it (longer audio is kept whole, cut to whole codes).
    /// </summary>
    public Tensor EncoderOutputs(ReadOnlySpan<float> audio)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return VqvaeTopEncoder.Rows(Vqvae.EncodeContinuous(PaddedWave(audio))).MoveToOuterDisposeScope();
    }

    /// <summary>The codes of the same audio as <see cref="EncoderOutputs"/>: one per hop.</summary>
    public long[] Codes(ReadOnlySpan<float> audio)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return Vqvae.Encode(PaddedWave(audio)).reshape(-1).cpu().data<long>().ToArray();
    }

    /// <summary>A copy of the top level's codebook [k_bins, emb_width].</summary>
    public Tensor Codebook() => Vqvae.Codebook.detach().clone();

    /// <summary>Replaces the top level's codebook (same shape); codes and embeddings change with it.</summary>
    public void SetCodebook(Tensor codebook)
    {
        ArgumentNullException.ThrowIfNull(codebook);
        Vqvae.SetCodebook(codebook.to(Device));
    }

    private Tensor PaddedWave(ReadOnlySpan<float> audio)
    {
        int hop = Config.Vqvae.HopLength;
        int length = Math.Max(Config.ContextSamples, audio.Length / hop * hop);
        int used = Math.Min(audio.Length, length);
        Tensor wave = zeros(1, length, device: Device);
        using Tensor host = tensor(audio[..used].ToArray(), [1, used]);
        wave.narrow(1, 0, used).copy_(host);
        return wave;
    }

    public Device Device { get; }

    public void Dispose()
    {
        Vqvae.Dispose();
        Prior.Dispose();
    }
}
