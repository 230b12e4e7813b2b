using LLark.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Encoder.Engine.Model;

/// <summary>
/// Writes a random-weight encoder folder in the layout <c>llark convert-jukebox</c> makes (<c>jukebox_encoder.json</c>,
/// <c>vqvae.safetensors</c>, <c>prior_level_2.safetensors</c>), for benchmarks of shapes no released checkpoint has.
/// Names, shapes and stored dtypes are the real ones (the prior's Conv1D matrices in float16, everything else
/// float32), so the original Jukebox modules can load the same tensors. The weights follow Jukebox's own init scales
/// (Conv1D and embeddings N(0, 0.02) and N(0, 0.01), LayerNorm 1 and 0, zero biases); the VQ-VAE convs use
/// N(0, 1/fan_in) so the activations stay in range, and the codebook is N(0, 1).
/// </summary>
public static class RandomJukeboxCheckpoint
{
    /// <summary>A mid-size encoder: the 5b VQ-VAE and a 5b-structured prior of width 1024, 8 heads and 12 blocks, n_ctx 8192.</summary>
    public static JukeboxEncoderConfig Mid { get; } = JukeboxEncoderConfig.Preset5b with
    {
        Prior = new PriorConfig { Width = 1024, Depth = 12, Heads = 8 },
        Layers = 12,
    };

    public static JukeboxEncoderConfig Shape(string name) => name.Trim().ToLowerInvariant() switch
    {
        "mid" => Mid,
        _ => throw new EncoderConfigException($"unknown benchmark shape '{name}' (known: mid)"),
    };

    /// <summary>Writes the folder and returns the bytes of weights written.</summary>
    public static long Write(JukeboxEncoderConfig config, string folder, int seed = 1234)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate("random checkpoint");
        Directory.CreateDirectory(folder);
        using var generator = new Generator((ulong)seed);
        using var vq = new VqvaeTopEncoder(config.Vqvae, META);
        using var prior = new PriorPrefix(config, ScalarType.Float32, META);
        long bytes = WriteFile(Path.Combine(folder, JukeboxEncoderLoader.ConvertedVqvaeFileName), vq.CheckpointParameters(), false, generator);
        bytes += WriteFile(Path.Combine(folder, JukeboxEncoderLoader.ConvertedPriorFileName), prior.CheckpointParameters(), true, generator);
        File.WriteAllText(Path.Combine(folder, JukeboxEncoderLoader.ConfigFileName), config.ToJson());
        return bytes;
    }

    /// <summary>
    /// Writes only a fresh random prior of <paramref name="config"/> (all <see cref="JukeboxEncoderConfig.Layers"/> blocks) and
    /// the config into <paramref name="folder"/>, for a new prior over an existing VQ-VAE; returns the bytes written.
    /// </summary>
    public static long WritePrior(JukeboxEncoderConfig config, string folder, int seed = 1234)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate("random prior");
        Directory.CreateDirectory(folder);
        using var generator = new Generator((ulong)seed);
        using var prior = new PriorPrefix(config, ScalarType.Float32, META);
        long bytes = WriteFile(Path.Combine(folder, JukeboxEncoderLoader.ConvertedPriorFileName), prior.CheckpointParameters(), true, generator);
        AtomicFile.WriteText(Path.Combine(folder, JukeboxEncoderLoader.ConfigFileName), config.ToJson());
        return bytes;
    }

    private static long WriteFile(string path, IReadOnlyDictionary<string, Tensor> parameters, bool isPrior, Generator generator)
    {
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["source"] = "llark-bench embed (random weights)" };
        var tensors = new List<KeyValuePair<string, Tensor>>();
        long bytes = 0;
        try
        {
            foreach ((string name, Tensor meta) in parameters)
            {
                Tensor value = Draw(name, meta.shape, isPrior, generator);
                tensors.Add(new(name, value));
                bytes += value.NumberOfElements * value.ElementSize;
            }
            SafetensorsWriter.Save(path, tensors, metadata);
        }
        finally
        {
            foreach (var t in tensors) t.Value.Dispose();
        }
        return bytes;
    }

    private static Tensor Draw(string name, long[] shape, bool isPrior, Generator generator)
    {
        Tensor Normal(double std)
        {
            using Scalar s = std.ToScalar();
            return randn(shape, generator: generator).mul_(s);
        }
        if (!isPrior)
        {
            if (name.EndsWith(".bias", StringComparison.Ordinal)) return zeros(shape);
            if (name.EndsWith(".k", StringComparison.Ordinal)) return Normal(1.0);
            long fanIn = shape.Skip(1).Aggregate(1L, (a, b) => a * b);
            return Normal(1.0 / Math.Sqrt(fanIn));
        }
        if (name.Contains(".ln_", StringComparison.Ordinal))
            return name.EndsWith(".weight", StringComparison.Ordinal) ? ones(shape) : zeros(shape);
        if (name.EndsWith(".b", StringComparison.Ordinal)) return zeros(shape);
        if (name.EndsWith(".w", StringComparison.Ordinal))
        {
            using Tensor w = Normal(0.02);
            return w.to_type(ScalarType.Float16);
        }
        return Normal(name.StartsWith("prior.x_emb", StringComparison.Ordinal) ? 0.02 : 0.01);
    }
}
