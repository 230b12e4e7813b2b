using System.CommandLine;
using System.Globalization;
using LLark.Data.Synth;

namespace LLark.Cli.Commands;

/// <summary><c>llark data synth --out DIR --clips N</c>: rendered music with known tempo, key, meter, chords and instruments.</summary>
internal static class DataSynthCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "dataset folder: audio/*.wav and manifest.jsonl", Required = true };
        var clips = new Option<int>("--clips") { Description = "how many clips the dataset should hold (a re-run renders the missing ones)", Required = true };
        var seconds = new Option<double>("--seconds") { Description = "length of each clip", DefaultValueFactory = _ => 25 };
        var seed = new Option<long>("--seed") { Description = "everything about every clip follows from this", DefaultValueFactory = _ => 0 };
        var soundFonts = new Option<string[]>("--soundfont")
        {
            Description = "SoundFont 2 file to render with (repeatable; one is picked per clip from the seed). Default: " + string.Join(", ", FluidSynth.DefaultSoundFonts),
            AllowMultipleArgumentsPerToken = false,
        };
        var styles = new Option<string[]>("--style")
        {
            Description = "only these styles (repeatable): " + string.Join(", ", Styles.All.Select(s => s.Name)),
            AllowMultipleArgumentsPerToken = false,
        };
        var jobs = new Option<int>("--jobs") { Description = "clips rendered at once (default: one per CPU core)", DefaultValueFactory = _ => 0 };
        var command = new Command("synth", "Compose and render labelled clips with FluidSynth (resumable)")
        {
            output, clips, seconds, seed, soundFonts, styles, jobs,
        };
        command.SetAction((parse, ct) => DataCommand.Run(() => Task.FromResult(Run(new SynthOptions
        {
            OutDir = parse.GetValue(output)!,
            Clips = parse.GetValue(clips) is int n and >= 0 ? n : throw new UsageException("--clips must be 0 or more"),
            Seconds = parse.GetValue(seconds) is double s and >= 1 and <= 600 ? s : throw new UsageException("--seconds must be between 1 and 600"),
            Seed = parse.GetValue(seed),
            SoundFonts = parse.GetValue(soundFonts) ?? [],
            Styles = parse.GetValue(styles) ?? [],
            Jobs = parse.GetValue(jobs) is int j and >= 0 ? j : throw new UsageException("--jobs must be 0 or more"),
        }, ct))));
        return command;
    }

    private static int Run(SynthOptions options, CancellationToken cancel)
    {
        SynthResult result = SynthDataset.Run(options, Console.WriteLine, cancel);
        var inv = CultureInfo.InvariantCulture;
        double wall = Math.Max(result.Elapsed.TotalSeconds, 1e-9);
        Console.WriteLine(string.Create(inv,
            $"rendered {result.Rendered} clips ({result.Skipped} already there, {result.Failures.Count} failed) in {result.Elapsed.TotalSeconds:F1} s: " +
            $"{result.Rendered / wall:F2} clips/s, {result.AudioSeconds / wall:F1} s of audio per second -> {Path.Combine(options.OutDir, SynthDataset.ManifestFile)}"));
        foreach (string failure in result.Failures) Console.Error.WriteLine($"failed: {failure}");
        return result.Failures.Count == 0 ? ExitCodes.Ok : ExitCodes.Failure;
    }
}
