using System.Text.Json.Nodes;
using LLark.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Encoder.Engine.Model;

/// <summary>How to materialise the encoder.</summary>
public sealed record JukeboxLoadOptions
{
    /// <summary>Prior blocks to run; null keeps the config's (36 for 5b).</summary>
    public int? Layers { get; init; }

    /// <summary>Type the transformer matrices (float16 on disk) run in: float32 (default) or bfloat16. Everything else is float32.</summary>
    public ScalarType MatrixType { get; init; } = ScalarType.Float32;

    /// <summary>Hyper-parameters to use instead of the checkpoints' <c>hps</c>; sizes are still checked against the tensors.</summary>
    public JukeboxEncoderConfig? Config { get; init; }

    /// <summary>Preset used when neither <see cref="Config"/> nor the checkpoints give hyper-parameters.</summary>
    public string Preset { get; init; } = "5b";

    /// <summary>Where the model runs; the CPU by default. Weights are read on the CPU and then moved.</summary>
    public Device? Device { get; init; }

    public IProgress<LoadProgress>? Progress { get; init; }
}

/// <summary>
/// Loads the encoder from a folder made by <c>llark convert-jukebox</c> (<see cref="ConfigFileName"/> plus two
/// safetensors files) or from the original Jukebox checkpoints, in any container (legacy or zip torch.save,
/// safetensors). Only the tensors the encoder uses are read.
/// </summary>
public static class JukeboxEncoderLoader
{
    public const string ConfigFileName = "jukebox_encoder.json";
    public const string ConvertedVqvaeFileName = "vqvae.safetensors";
    public const string ConvertedPriorFileName = "prior_level_2.safetensors";

    private static readonly string[] VqvaeCandidates = ["vqvae.pth.tar", "vqvae.pth", "vqvae.zip.pth", ConvertedVqvaeFileName];
    private static readonly string[] PriorCandidates = ["prior_level_2.pth.tar", "prior_level_2.pth", "prior_level_2.zip.pth", ConvertedPriorFileName];

    public static JukeboxEncoder Load(string folder, JukeboxLoadOptions? options = null, CancellationToken ct = default)
    {
        options ??= new JukeboxLoadOptions();
        if (!Directory.Exists(folder))
            throw new CheckpointException($"encoder folder not found: {folder}");
        string configPath = Path.Combine(folder, ConfigFileName);
        if (File.Exists(configPath))
        {
            var config = JukeboxEncoderConfig.FromJson(File.ReadAllText(configPath), configPath);
            if (options.Layers > config.Layers)
                throw new EncoderConfigException($"{configPath}: the folder holds {config.Layers} prior blocks; {options.Layers} were asked for");
            return Load(Path.Combine(folder, ConvertedVqvaeFileName), Path.Combine(folder, ConvertedPriorFileName),
                options with { Config = options.Config ?? config }, ct);
        }
        string Find(string[] candidates, string what) => candidates.Select(c => Path.Combine(folder, c)).FirstOrDefault(File.Exists)
            ?? throw new CheckpointException($"{folder} holds neither {ConfigFileName} nor a {what} checkpoint ({string.Join(", ", candidates)})");
        return Load(Find(VqvaeCandidates, "VQ-VAE"), Find(PriorCandidates, "prior"), options, ct);
    }

    public static JukeboxEncoder Load(string vqvaePath, string priorPath, JukeboxLoadOptions? options = null, CancellationToken ct = default)
    {
        options ??= new JukeboxLoadOptions();
        using ITensorSource vqSource = Open(vqvaePath);
        using ITensorSource priorSource = Open(priorPath);
        JukeboxEncoderConfig config = ResolveConfig(vqSource, priorSource, options, $"{vqvaePath} + {priorPath}");

        // Shapes first, on the meta device: a config that disagrees with the weights fails before any allocation.
        using (var metaVq = new VqvaeTopEncoder(config.Vqvae, META))
            CheckShapes(metaVq.CheckpointParameters(), vqSource, vqvaePath);
        using (var metaPrior = new PriorPrefix(config, options.MatrixType, META))
            CheckShapes(metaPrior.CheckpointParameters(), priorSource, priorPath);

        var vqvae = new VqvaeTopEncoder(config.Vqvae, CPU);
        var prior = new PriorPrefix(config, options.MatrixType, CPU);
        try
        {
            LoadInto(vqvae.CheckpointParameters(), vqSource, options.Progress, ct);
            LoadInto(prior.CheckpointParameters(), priorSource, options.Progress, ct);
            vqvae.eval();
            prior.eval();
            Device device = options.Device ?? CPU;
            if (device.type != DeviceType.CPU)
            {
                vqvae.to(device);
                prior.to(device);
            }
            return new JukeboxEncoder(config, vqvae, prior, device);
        }
        catch
        {
            vqvae.Dispose();
            prior.Dispose();
            throw;
        }
    }

    /// <summary>Opens a Jukebox checkpoint: torch.save dicts keep the weights under "model", maybe prefixed "module.".</summary>
    public static ITensorSource Open(string path) => CheckpointOpener.Open(path, stateDictKey: "model", stripModulePrefix: true);

    /// <summary>Names of the checkpoint tensors the encoder reads from the VQ-VAE and the prior files, for <paramref name="config"/>.</summary>
    public static (IReadOnlyList<string> Vqvae, IReadOnlyList<string> Prior) NeededTensors(JukeboxEncoderConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        using var vq = new VqvaeTopEncoder(config.Vqvae, META);
        using var prior = new PriorPrefix(config, ScalarType.Float32, META);
        return (vq.CheckpointParameters().Keys.ToList(), prior.CheckpointParameters().Keys.ToList());
    }

    /// <summary>
    /// Hyper-parameters from the options, else the checkpoints' <c>hps</c>, else the preset; then every size the
    /// tensors state (codebook, context, widths, label tables, block count) taken from their shapes.
    /// </summary>
    public static JukeboxEncoderConfig ResolveConfig(ITensorSource vqSource, ITensorSource priorSource, JukeboxLoadOptions options, string origin)
    {
        int present = CountBlocks(priorSource);
        int layers = options.Layers ?? Math.Min(JukeboxEncoderConfig.Preset5b.Layers, Math.Max(1, present));
        JukeboxEncoderConfig config = options.Config ?? FromHps(vqSource, priorSource, layers, origin) ?? JukeboxEncoderConfig.Preset(options.Preset);
        config = FromShapes(config, vqSource, priorSource, origin).WithLayers(options.Layers);
        config.Validate(origin);
        if (config.Layers > present)
            throw new EncoderConfigException($"{origin}: {config.Layers} prior blocks are needed but the checkpoint holds {present}");
        return config;
    }

    private static JukeboxEncoderConfig? FromHps(ITensorSource vqSource, ITensorSource priorSource, int layers, string origin)
    {
        JsonNode? vq = Hps(vqSource), prior = Hps(priorSource);
        if (vq is null && prior is null)
            return null;
        return JukeboxEncoderConfig.FromHps(vq, prior, layers, origin);
    }

    private static JsonNode? Hps(ITensorSource source)
    {
        IReadOnlyDictionary<string, object?>? metadata = source switch
        {
            TorchPickleFile pickle => pickle.Metadata,
            _ => null,
        };
        return metadata is not null && metadata.TryGetValue("hps", out object? hps) && hps is not null ? JukeboxEncoderConfig.PickledToJson(hps) : null;
    }

    private static JukeboxEncoderConfig FromShapes(JukeboxEncoderConfig config, ITensorSource vqSource, ITensorSource priorSource, string origin)
    {
        long[]? Shape(ITensorSource source, string name) => source.Entries.TryGetValue(name, out var e) ? e.Shape : null;
        var vqvae = config.Vqvae;
        if (Shape(vqSource, $"bottleneck.level_blocks.{vqvae.TopLevel}.k") is [long bins, long emb])
            vqvae = vqvae with { CodebookSize = (int)bins, EmbWidth = (int)emb };
        var prior = config.Prior;
        if (Shape(priorSource, "prior.pos_emb.pos_emb") is [long nCtx, long width])
            prior = prior with { NCtx = (int)nCtx, Width = (int)width };
        if (Shape(priorSource, "y_emb.bow_genre_emb.emb.weight") is [long genres, _] && Shape(priorSource, "y_emb.artist_emb.emb.weight") is [long artists, _])
            prior = prior with { YBins = [(int)genres, (int)artists] };
        if (Shape(priorSource, "y_emb.total_length_emb.emb.weight") is [long tBins, _])
            prior = prior with { TBins = (int)tBins };
        if (Shape(priorSource, "prior.transformer._attn_mods.0.attn.c_attn.w") is [long inWidth, long qkv] && inWidth > 0)
            prior = prior with { MAttn = qkv / 3.0 / inWidth };
        if (Shape(priorSource, "prior.transformer._attn_mods.0.mlp.c_fc.w") is [long mlpIn, long mlpOut] && mlpIn > 0)
            prior = prior with { MMlp = (double)mlpOut / mlpIn };
        return config with { Vqvae = vqvae, Prior = prior };
    }

    internal static int CountBlocks(ITensorSource source)
    {
        int count = 0;
        while (source.Entries.ContainsKey($"prior.transformer._attn_mods.{count}.attn.c_attn.w"))
            count++;
        return count;
    }

    private static void CheckShapes(IReadOnlyDictionary<string, Tensor> expected, ITensorSource source, string path)
    {
        var missing = expected.Keys.Where(n => !source.Entries.ContainsKey(n)).ToList();
        var wrong = expected
            .Where(p => source.Entries.TryGetValue(p.Key, out var e) && !e.Shape.SequenceEqual(p.Value.shape))
            .Select(p => $"{p.Key} is [{string.Join(", ", source.Entries[p.Key].Shape)}] in the checkpoint but the config implies [{string.Join(", ", p.Value.shape)}]")
            .ToList();
        if (missing.Count == 0 && wrong.Count == 0)
            return;
        var problems = new List<string>();
        if (missing.Count > 0)
            problems.Add($"{missing.Count} tensors missing ({string.Join(", ", missing.Take(5))}{(missing.Count > 5 ? ", ..." : "")})");
        if (wrong.Count > 0)
            problems.Add(string.Join("; ", wrong.Take(5)) + (wrong.Count > 5 ? $"; and {wrong.Count - 5} more" : ""));
        throw new EncoderConfigException($"{path} does not fit the encoder config: {string.Join(". ", problems)}");
    }

    private static void LoadInto(IReadOnlyDictionary<string, Tensor> parameters, ITensorSource source, IProgress<LoadProgress>? progress, CancellationToken ct) =>
        StrictLoader.Load(parameters, source, name => !parameters.ContainsKey(name), progress, ct);
}
