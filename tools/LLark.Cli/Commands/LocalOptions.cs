using System.CommandLine;
using LLark.Evaluation;
using LLark.Language.Engine.Model;

namespace LLark.Cli.Commands;

/// <summary>
/// <c>--local [--model DIR] [--encoder DIR] [--fps F]</c>: run LLark in this process. Folders not named resolve through
/// <see cref="LLark.Data.ModelLocator"/> ($LLARK_MODEL, $LLARK_ENCODER, $LLARK_MODELS_DIR, then the repository's models/).
/// </summary>
internal sealed class LocalOptions
{
    public Option<bool> Local { get; } = new("--local") { Description = "run the encoder and the model here, no services" };

    public Option<string?> Model { get; } = new("--model") { Description = "with --local: LLark checkpoint folder (default: $LLARK_MODEL or models/llark-demo)" };

    public Option<string?> Encoder { get; } = new("--encoder") { Description = "with --local: encoder folder, spectral or Jukebox (default: $LLARK_ENCODER or models/spectral)" };

    public Option<double?> Fps { get; } = new("--fps") { Description = "with --local: the encoder's pooling rate; must be the checkpoint's mm_audio_fps (default: that)" };

    public Option<string?> Weights { get; } = new("--weights") { Description = "with --local: fp32 (default), bf16 or int8 weights in the language model's CPU kernels" };

    public static LocalOptions Create() => new();

    public void AddTo(Command command)
    {
        command.Options.Add(Local);
        command.Options.Add(Model);
        command.Options.Add(Encoder);
        command.Options.Add(Fps);
        command.Options.Add(Weights);
    }

    /// <summary>--model, --encoder and --fps mean nothing without --local.</summary>
    public void RefuseWithoutLocal(ParseResult parse)
    {
        if (parse.GetValue(Model) is not null || parse.GetValue(Encoder) is not null || parse.GetValue(Fps) is not null || parse.GetValue(Weights) is not null)
            throw new UsageException("--model, --encoder, --fps and --weights go with --local");
    }

    public LocalLLark Load(ParseResult parse, CancellationToken ct)
    {
        string? weights = parse.GetValue(Weights);
        WeightFormat format = weights is null ? WeightFormat.Fp32
            : WeightFormats.TryParse(weights) ?? throw new UsageException($"--weights: '{weights}' is not fp32, bf16 or int8");
        return LocalLLark.Load(parse.GetValue(Model), parse.GetValue(Encoder), new LocalLLarkOptions { Fps = parse.GetValue(Fps), Weights = format }, ct);
    }
}
