using LLark.Checkpoints;
using LLark.Encoder.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;
using static LLark.Checkpoints.KeptScalars;

namespace LLark.Training.Encoder;

/// <summary>How a codebook is used on some audio: distinct codes and the perplexity exp(H) of the code histogram.</summary>
public sealed record CodeUsage(int Used, int Bins, double Perplexity, long Frames)
{
    /// <summary>Histogram statistics of int64 codes in [0, bins).</summary>
    public static CodeUsage Of(Tensor codes, int bins)
    {
        ArgumentNullException.ThrowIfNull(codes);
        using var scope = NewDisposeScope();
        Tensor counts = codes.reshape(-1).bincount(null, bins).to(ScalarType.Float64);
        double total = counts.sum().item<double>();
        using Scalar totalScalar = total.ToScalar();
        Tensor p = counts.div(totalScalar);
        Tensor used = p.gt(Zero);
        double entropy = -p.masked_select(used).log().mul(p.masked_select(used)).sum().item<double>();
        return new CodeUsage((int)used.sum().item<long>(), bins, Math.Exp(entropy), (long)total);
    }
}

/// <summary>
/// Codebook initialisation from encoder outputs, as Jukebox's <c>BottleneckBlock</c> does it: on its first batch,
/// <c>init_k</c> sets the k_bins codes to a random sample of the batch's encoder output vectors (tiled with noise of
/// std 0.01/√emb_width when the batch has fewer vectors than codes); its EMA updates then restart every code used less
/// than once with another random encoder output. <see cref="Refine"/> is that update with the decay at 0: a k-means
/// (Lloyd) pass with dead-code restarts.
/// </summary>
public static class CodebookInit
{
    /// <summary>Rows of x handled at once when finding nearest codes, so distances stay [rows, k_bins].</summary>
    private const long Chunk = 1 << 16;

    /// <summary>k_bins rows drawn from the encoder outputs <paramref name="x"/> [M, emb_width], as <c>init_k</c> draws them.</summary>
    public static Tensor FromSamples(Tensor x, int bins, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        Tensor y = Tile(x, bins, generator);
        Tensor order = randperm(y.shape[0], generator: generator);
        return y.index_select(0, order.narrow(0, 0, bins)).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>One Lloyd pass: each code becomes the mean of the outputs nearest to it; codes nobody chose restart at a random output.</summary>
    public static Tensor Refine(Tensor x, Tensor codebook, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(codebook);
        using var scope = NewDisposeScope();
        long bins = codebook.shape[0];
        Tensor codes = Nearest(x, codebook);
        Tensor sums = zeros(bins, x.shape[1], dtype: x.dtype).index_add_(0, codes, x, One);
        Tensor counts = codes.bincount(null, bins).to(x.dtype).unsqueeze(1);
        Tensor means = sums.div(counts.clamp_min(One));
        Tensor random = FromSamples(x, (int)bins, generator);
        return where(counts.ge(One), means, random).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>The nearest code of each row of x [M, emb_width], in the bottleneck's arithmetic, in chunks of rows.</summary>
    public static Tensor Nearest(Tensor x, Tensor codebook)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        var parts = new List<Tensor>();
        for (long at = 0; at < x.shape[0]; at += Chunk)
            parts.Add(VqvaeTopEncoder.NearestCodes(x.narrow(0, at, Math.Min(Chunk, x.shape[0] - at)), codebook));
        return (parts.Count == 1 ? parts[0] : cat(parts, 0)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Writes the encoder folder <paramref name="from"/> (the <c>convert-jukebox</c> layout) to <paramref name="to"/> with
    /// only the top level's codebook replaced; every other tensor keeps its name, dtype and bytes.
    /// </summary>
    public static void WriteFolder(string from, string to, VqvaeConfig config, Tensor codebook)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(codebook);
        string codebookName = $"bottleneck.level_blocks.{config.TopLevel}.k";
        Directory.CreateDirectory(to);
        string vqvaePath = Path.Combine(from, JukeboxEncoderLoader.ConvertedVqvaeFileName);
        using var scope = NewDisposeScope();
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using (var source = new SafetensorsFile(vqvaePath))
        {
            if (!source.Entries.TryGetValue(codebookName, out var entry))
                throw new CheckpointException($"{vqvaePath} holds no {codebookName}");
            if (!entry.Shape.SequenceEqual(codebook.shape))
                throw new ArgumentException($"{codebookName} is [{string.Join(", ", entry.Shape)}] but the new codebook is [{string.Join(", ", codebook.shape)}]", nameof(codebook));
            foreach (var e in source.Entries.Values)
            {
                Tensor value = empty(e.Shape, dtype: e.DType.ToScalarType());
                if (e.Name == codebookName) value.copy_(codebook.cpu());
                else source.ReadInto(e.Name, value);
                tensors.Add(new(e.Name, value));
            }
        }
        SafetensorsWriter.Save(Path.Combine(to, JukeboxEncoderLoader.ConvertedVqvaeFileName), tensors,
            new Dictionary<string, string> { ["format"] = "pt", ["source"] = "llark jukebox init-codebook" });
        if (!string.Equals(Path.GetFullPath(from), Path.GetFullPath(to), StringComparison.Ordinal))
        {
            AtomicFile.Copy(Path.Combine(from, JukeboxEncoderLoader.ConvertedPriorFileName), Path.Combine(to, JukeboxEncoderLoader.ConvertedPriorFileName));
            AtomicFile.Copy(Path.Combine(from, JukeboxEncoderLoader.ConfigFileName), Path.Combine(to, JukeboxEncoderLoader.ConfigFileName));
        }
    }

    private static Tensor Tile(Tensor x, int bins, Generator generator)
    {
        long rows = x.shape[0], width = x.shape[1];
        if (rows >= bins)
            return x.alias();
        long repeats = (bins + rows - 1) / rows;
        double std = 0.01 / Math.Sqrt(width);
        Tensor tiled = x.repeat(repeats, 1);
        using Scalar noise = std.ToScalar();
        return tiled.add(randn(tiled.shape, generator: generator, dtype: x.dtype).mul_(noise), One);
    }
}
