using System.CommandLine;
using System.Diagnostics;
using LLark.Checkpoints;
using LLark.Encoder.Engine.Model;

namespace LLark.Cli.Commands;

/// <summary>
/// <c>llark convert-jukebox</c>: copies only what the encoder reads (VQ-VAE top level, prior embeddings, the first
/// N blocks) out of the original Jukebox checkpoints into two safetensors files plus <c>jukebox_encoder.json</c>,
/// so a service never opens the full 5B prior. Tensors keep their names and stored dtypes.
/// </summary>
internal static class ConvertJukeboxCommand
{
    public static Command Create()
    {
        var vqvae = new Option<string>("--vqvae") { Description = "vqvae.pth.tar (legacy or zip torch.save, or safetensors)", Required = true };
        var prior = new Option<string>("--prior") { Description = "prior_level_2.pth.tar (legacy or zip torch.save, or safetensors)", Required = true };
        var layers = new Option<int?>("--layers") { Description = "prior blocks to keep (default: the config's, 36 for 5b)" };
        var preset = new Option<string>("--preset") { Description = "hyper-parameters when the checkpoints carry no hps", DefaultValueFactory = _ => "5b" };
        var config = new Option<string?>("--config") { Description = "a jukebox_encoder.json to use instead of the checkpoints' hps" };
        var output = new Option<string>("--out") { Description = "folder to write", Required = true };
        var command = new Command("convert-jukebox", "Extract the Jukebox encoder's tensors into safetensors") { vqvae, prior, layers, preset, config, output };
        command.SetAction(parse => CliErrors.Run(() => Run(parse.GetValue(vqvae)!, parse.GetValue(prior)!, parse.GetValue(layers),
            parse.GetValue(preset)!, parse.GetValue(config), parse.GetValue(output)!)));
        return command;
    }

    private static int Run(string vqvaePath, string priorPath, int? layers, string preset, string? configPath, string outDir)
    {
        var clock = Stopwatch.StartNew();
        JukeboxEncoderConfig? explicitConfig = configPath is null ? null : JukeboxEncoderConfig.FromJson(File.ReadAllText(configPath), configPath);
        using ITensorSource vq = JukeboxEncoderLoader.Open(vqvaePath);
        using ITensorSource pr = JukeboxEncoderLoader.Open(priorPath);
        var options = new JukeboxLoadOptions { Layers = layers, Preset = preset, Config = explicitConfig };
        JukeboxEncoderConfig config = JukeboxEncoderLoader.ResolveConfig(vq, pr, options, $"{vqvaePath} + {priorPath}");
        (IReadOnlyList<string> vqNames, IReadOnlyList<string> priorNames) = JukeboxEncoderLoader.NeededTensors(config);

        Directory.CreateDirectory(outDir);
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["source"] = "llark convert-jukebox" };
        SafetensorsWriter.Write(Path.Combine(outDir, JukeboxEncoderLoader.ConvertedVqvaeFileName),
            vqNames.Select(n => new TensorCopyRequest(n, vq, n)).ToList(), metadata);
        SafetensorsWriter.Write(Path.Combine(outDir, JukeboxEncoderLoader.ConvertedPriorFileName),
            priorNames.Select(n => new TensorCopyRequest(n, pr, n)).ToList(), metadata);
        File.WriteAllText(Path.Combine(outDir, JukeboxEncoderLoader.ConfigFileName), config.ToJson());

        long bytes = vqNames.Sum(n => vq.Entries[n].ByteCount()) + priorNames.Sum(n => pr.Entries[n].ByteCount());
        Console.WriteLine($"wrote {outDir}: {vqNames.Count} VQ-VAE and {priorNames.Count} prior tensors ({bytes / 1048576.0:F1} MiB), " +
            $"{config.Layers} of {config.Prior.Depth} blocks, width {config.Prior.Width}, n_ctx {config.Prior.NCtx}, in {clock.Elapsed.TotalSeconds:F1} s");
        return ExitCodes.Ok;
    }
}
