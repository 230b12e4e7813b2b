using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Engine.Model;
using TorchSharp;

namespace LLark.Cli.Commands;

/// <summary>
/// <c>llark embed CLIP</c>: embeds a clip on the server (through the gateway) and prints its embedding id; with
/// <c>--encoder PATH --out FILE.npy</c> it runs the Jukebox encoder here instead and writes float32 [frames, width].
/// </summary>
internal static class EmbedCommand
{
    public static Command Create()
    {
        var encoder = EncoderOption();
        var layers = LayersOption();
        var fps = new Option<double>("--fps") { Description = "frames per second after pooling (window floor(344.53/fps)); 0 keeps every token", DefaultValueFactory = _ => 25 };
        var path = PathOption();
        var dtype = DTypeOption();
        var output = new Option<string?>("--out") { Description = "with --encoder: the .npy file to write" };
        var clip = new Argument<string>("clip") { Description = "audio file: WAV, MP3 or Ogg Vorbis" };
        var client = new ClientOptions();
        var command = new Command("embed", "Embed a clip: on the server (prints its id), or here with --encoder (writes a .npy)")
        {
            encoder, layers, fps, path, dtype, output, clip,
        };
        client.AddTo(command);
        command.SetAction((parse, ct) => parse.GetValue(encoder) is { } folder
            ? CliErrors.Run(() => Run(folder, parse.GetValue(layers), parse.GetValue(fps), parse.GetValue(path)!, parse.GetValue(dtype)!,
                parse.GetValue(output) ?? throw new UsageException("--out FILE.npy is required with --encoder"), parse.GetValue(clip)!))
            : ClientCommands.EmbedRemote(client, parse, parse.GetValue(clip)!, ct));
        return command;
    }

    internal static Option<string?> EncoderOption() => new("--encoder")
    {
        Description = "run here: an encoder folder: spectral (spectral_encoder.json, e.g. models/spectral), one made by convert-jukebox, or one holding vqvae.pth.tar and prior_level_2.pth.tar",
    };

    internal static Option<int?> LayersOption() => new("--layers") { Description = "prior blocks to run (default: the config's, 36 for 5b)" };

    internal static Option<string> PathOption() => new("--path")
    {
        Description = "llark (pad to the full context, then trim) or jukemirlib (encode only the clip)",
        DefaultValueFactory = _ => "llark",
    };

    internal static Option<string> DTypeOption() => new("--dtype") { Description = "transformer matrices in fp32 or bf16", DefaultValueFactory = _ => "fp32" };

    internal static ExtractionPath ParsePath(string name) => name.Trim().ToLowerInvariant() switch
    {
        "llark" => ExtractionPath.LLarkPadded,
        "jukemirlib" => ExtractionPath.Jukemirlib,
        _ => throw new UsageException($"--path must be llark or jukemirlib, not '{name}'"),
    };

    internal static torch.ScalarType ParseDType(string name) => LLark.Checkpoints.RunTimeDTypes.TryParse(name, LLark.Checkpoints.RunTimeDTypes.Encoder)
        ?? throw new UsageException($"--dtype must be {LLark.Checkpoints.RunTimeDTypes.Expected(LLark.Checkpoints.RunTimeDTypes.Encoder)}, not '{name}'");

    internal static JukeboxEncoder Load(string folder, int? layers, string dtype) =>
        JukeboxEncoderLoader.Load(folder, new JukeboxLoadOptions { Layers = CheckLayers(layers), MatrixType = ParseDType(dtype) });

    /// <summary>The <c>--layers</c> value, refused below 1.</summary>
    internal static int? CheckLayers(int? layers) => layers is < 1 ? throw new UsageException("--layers must be at least 1") : layers;

    private static int Run(string folder, int? layers, double fps, string pathName, string dtype, string output, string clip)
    {
        ExtractionPath path = ParsePath(pathName);
        if (fps < 0 || double.IsNaN(fps))
            throw new UsageException("--fps must be positive, or 0 for every token");
        var clock = Stopwatch.StartNew();
        using JukeboxEncoder encoder = Load(folder, layers, dtype);
        double load = clock.Elapsed.TotalSeconds;
        clock.Restart();
        PreparedAudio audio = AudioFrontEnd.Prepare(ReadClip(clip), encoder.Config.Prior.SampleRate, encoder.Config.ContextSamples);
        double decode = clock.Elapsed.TotalSeconds;
        clock.Restart();
        AudioEmbedding embedding = encoder.Embed(audio.Samples, new EmbedOptions { Path = path, Fps = fps > 0 ? fps : null });
        double embed = clock.Elapsed.TotalSeconds;
        LLark.Data.Npy.WriteFloat32(output, embedding.Values, embedding.Frames, embedding.Width);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"wrote {output}: [{embedding.Frames}, {embedding.Width}] float32 at {embedding.FramesPerSecond:F3} frames/s " +
            $"({embedding.Tokens} tokens from {audio.Samples.Length / (double)audio.SampleRate:F2} s of audio, {encoder.Config.Layers} blocks)"));
        Console.WriteLine(string.Create(inv, $"load {load:F2} s, decode {decode:F2} s, embed {embed:F2} s"));
        return ExitCodes.Ok;
    }

    internal static byte[] ReadClip(string clip)
    {
        if (!File.Exists(clip))
            throw new FileNotFoundException($"clip not found: {clip}", clip);
        long length = new FileInfo(clip).Length;
        long limit = new AudioLimits().MaxBytes;
        if (length > limit)
            throw new AudioDecodeException(AudioDecodeError.TooLarge, $"{clip} has {length} bytes, more than the limit of {limit}");
        return File.ReadAllBytes(clip);
    }
}
