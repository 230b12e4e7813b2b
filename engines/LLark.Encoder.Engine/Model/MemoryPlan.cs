using TorchSharp;

namespace LLark.Encoder.Engine.Model;

/// <summary>Memory the encoder needs, computed from shapes alone (nothing is allocated).</summary>
public sealed record MemoryPlan(long WeightBytes, long MatrixBytes, long PeakActivationBytes, long ScoreBytesPerBlock, int Tokens)
{
    /// <summary>
    /// Weights as the loader allocates them (transformer matrices in <paramref name="matrixType"/>, the rest
    /// float32), and the peak of live float32 activations inside one prior block over <paramref name="tokens"/>
    /// positions: residual stream, norms, q/k/v with their blocked copies, attention scores and probabilities, the
    /// MLP hidden layer and its activation. Scores scale with tokens × block_ctx (or × the transposed query
    /// chunk), never tokens², so the peak is linear in the clip length.
    /// </summary>
    public static MemoryPlan Estimate(JukeboxEncoderConfig config, torch.ScalarType matrixType, int? tokens = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        PriorConfig p = config.Prior;
        VqvaeConfig v = config.Vqvae;
        long t = tokens ?? p.NCtx;
        long width = p.Width, attn = p.AttnWidth, mlp = p.MlpWidth;
        long matrixElements = width * 3 * attn + attn * width + width * mlp + mlp * width;
        long otherPerBlock = 3 * attn + width + mlp + width + 4 * width;
        long embeddings = (p.GenreBins + p.ArtistBins + 3L * p.TBins + v.CodebookSize + p.NCtx) * width;
        int matrixSize = matrixType == torch.ScalarType.Float32 ? 4 : 2;
        long matrixBytes = config.Layers * matrixElements * matrixSize;
        long vqWeights = VqvaeParameters(v);
        long weightBytes = matrixBytes + 4 * (config.Layers * otherPerBlock + embeddings + vqWeights);

        long padded = (t + p.BlockCtx - 1) / p.BlockCtx * p.BlockCtx;
        long scores = p.Heads * padded * Math.Max(p.BlockCtx, SparseAttention.QueryChunk);
        long elements = 5 * t * width + 3 * t * attn + 6 * padded * attn + 2 * scores + 2 * t * mlp;
        if (matrixType != torch.ScalarType.Float32)
            elements += t * Math.Max(width, mlp) / 2;
        long vqActivations = 4L * config.ContextSamples / v.StridesT[0] * v.TopWidth;
        long peak = Math.Max(4 * elements, 4 * vqActivations);
        return new MemoryPlan(weightBytes, matrixBytes, peak, 4 * scores, (int)t);
    }

    /// <summary>Parameters of the top-level encoder and its codebook.</summary>
    public static long VqvaeParameters(VqvaeConfig v)
    {
        ArgumentNullException.ThrowIfNull(v);
        long w = v.TopWidth, s = v.ResnetStateWidth, unit = w * s * 3 + s + s * w + w;
        long total = 0;
        for (int b = 0; b < v.Levels; b++)
        {
            long inChannels = b == 0 ? 1 : v.EmbWidth;
            long kernel = 2L * v.StridesT[b];
            for (int j = 0; j < v.DownsT[b]; j++)
                total += (j == 0 ? inChannels : w) * w * kernel + w + v.TopDepth * unit;
            total += w * v.EmbWidth * 3 + v.EmbWidth;
        }
        return total + (long)v.CodebookSize * v.EmbWidth;
    }
}
