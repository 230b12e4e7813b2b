using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using LLark.Cli.Commands;
using LLark.Encoder.Engine;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Engine.Model;
using TorchSharp;

namespace LLark.Bench.Commands;

/// <summary>
/// <c>llark-bench embed</c>: seconds per clip and seconds of audio per second for a Jukebox encoder (and, with
/// <c>--spectral</c>, the spectral family on the same clip in the same rounds), peak resident memory, and the weight
/// and activation memory of the real 5b encoder computed from its shapes.
/// </summary>
internal static class BenchEmbedCommand
{
    public static Command Create()
    {
        var encoder = EmbedCommand.EncoderOption();
        var layers = EmbedCommand.LayersOption();
        var path = EmbedCommand.PathOption();
        var dtype = EmbedCommand.DTypeOption();
        var clip = new Option<string?>("--clip") { Description = "audio file to embed (default: seeded noise of --seconds)" };
        var seconds = new Option<double?>("--seconds") { Description = "length of the noise clip (default: one full context)" };
        var repeat = new Option<int>("--repeat") { Description = "timed runs after one warm-up; the median is reported", DefaultValueFactory = _ => 3 };
        var threads = new Option<int?>("--threads") { Description = "libtorch intra-op threads (default: libtorch's choice)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var shape = new Option<string?>("--shape")
        {
            Description = "instead of --encoder: a random-weight encoder of this shape (mid: the 5b VQ-VAE, prior width 1024, 8 heads, 12 blocks, n_ctx 8192)",
        };
        var write = new Option<string?>("--write") { Description = "with --shape: keep its checkpoint folder here (convert-jukebox layout; default: a temporary folder, deleted)" };
        var spectral = new Option<string?>("--spectral")
        {
            Description = "also time this spectral encoder folder (e.g. models/spectral) on the same clip, in the same rounds",
        };
        var command = new Command("embed", "Measure Jukebox embedding speed and memory")
        {
            encoder, layers, path, dtype, clip, seconds, repeat, threads, json, shape, write, spectral,
        };
        command.SetAction(parse => CliErrors.Run(() => Run(parse.GetValue(encoder), parse.GetValue(shape), parse.GetValue(write), parse.GetValue(layers),
            parse.GetValue(path)!, parse.GetValue(dtype)!, parse.GetValue(clip), parse.GetValue(seconds), parse.GetValue(repeat), parse.GetValue(threads),
            parse.GetValue(json), parse.GetValue(spectral))));
        return command;
    }

    private static int Run(string? folder, string? shape, string? write, int? layers, string pathName, string dtype, string? clip, double? seconds,
        int repeat, int? threads, bool json, string? spectral)
    {
        if ((folder is null) == (shape is null))
            throw new UsageException("give either --encoder PATH or --shape NAME");
        if (write is not null && shape is null)
            throw new UsageException("--write goes with --shape");
        if (shape is null)
            return Run(folder!, layers, pathName, dtype, clip, seconds, repeat, threads, json, spectral);
        JukeboxEncoderConfig config = RandomJukeboxCheckpoint.Shape(shape);
        string target = write ?? Path.Combine(Path.GetTempPath(), $"llark-bench-{shape}-{Environment.ProcessId}");
        try
        {
            long bytes = RandomJukeboxCheckpoint.Write(config, target);
            if (!json)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"random {shape} checkpoint  {target} ({bytes / 1048576.0:F1} MiB of weights)"));
            return Run(target, layers, pathName, dtype, clip, seconds, repeat, threads, json, spectral);
        }
        finally
        {
            if (write is null && Directory.Exists(target))
                Directory.Delete(target, recursive: true);
        }
    }

    private static int Run(string folder, int? layers, string pathName, string dtype, string? clip, double? seconds, int repeat, int? threads, bool json,
        string? spectralFolder)
    {
        if (repeat < 1)
            throw new UsageException("--repeat must be at least 1");
        ExtractionPath path = EmbedCommand.ParsePath(pathName);
        if (threads is int n)
            torch.set_num_threads(n);
        using JukeboxEncoder encoder = EmbedCommand.Load(folder, layers, dtype);
        JukeboxEncoderConfig config = encoder.Config;
        float[] audio;
        if (clip is not null)
        {
            audio = AudioFrontEnd.Prepare(EmbedCommand.ReadClip(clip), config.Prior.SampleRate, config.ContextSamples).Samples;
        }
        else
        {
            int samples = (int)Math.Min(config.ContextSamples, Math.Round((seconds ?? config.ContextSamples / (double)config.Prior.SampleRate) * config.Prior.SampleRate));
            if (samples < config.Vqvae.HopLength)
                throw new UsageException("--seconds is shorter than one code");
            var random = new Random(1234);
            audio = Enumerable.Range(0, samples).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            AudioDsp.PeakNormalise(audio);
        }
        double audioSeconds = audio.Length / (double)config.Prior.SampleRate;
        var options = new EmbedOptions { Path = path };
        // The spectral family takes the same clip at its own rate, as the front end would give it.
        using IAudioEncoder? spectral = spectralFolder is null ? null : AudioEncoderLoader.Load(spectralFolder, new AudioEncoderOptions());
        float[]? spectralAudio = spectral is null ? null : AudioDsp.Resample(audio, config.Prior.SampleRate, spectral.SampleRate);
        encoder.Embed(audio, options);
        spectral?.EmbedBatch([spectralAudio!]);
        var times = new List<double>();
        var spectralTimes = new List<double>();
        for (int i = 0; i < repeat; i++)
        {
            var clock = Stopwatch.StartNew();
            encoder.Embed(audio, options);
            times.Add(clock.Elapsed.TotalSeconds);
            if (spectral is null) continue;
            clock.Restart();
            spectral.EmbedBatch([spectralAudio!]);
            spectralTimes.Add(clock.Elapsed.TotalSeconds);
        }
        double median = times.Order().ElementAt(times.Count / 2);
        double? spectralMedian = spectral is null ? null : spectralTimes.Order().ElementAt(spectralTimes.Count / 2);
        long peak = BenchCommand.PeakResidentBytes();
        var model = MemoryPlan.Estimate(config, EmbedCommand.ParseDType(dtype));
        var real32 = MemoryPlan.Estimate(JukeboxEncoderConfig.Preset5b, torch.ScalarType.Float32);
        var real16 = MemoryPlan.Estimate(JukeboxEncoderConfig.Preset5b, torch.ScalarType.BFloat16);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                encoder = folder,
                width = config.Prior.Width,
                layers = config.Layers,
                n_ctx = config.Prior.NCtx,
                path = path.ToString(),
                dtype,
                threads = torch.get_num_threads(),
                audio_seconds = audioSeconds,
                seconds_per_clip = median,
                audio_seconds_per_second = audioSeconds / median,
                peak_rss_bytes = peak,
                weight_bytes = model.WeightBytes,
                peak_activation_bytes = model.PeakActivationBytes,
                real_5b = new
                {
                    fp32_weight_bytes = real32.WeightBytes,
                    fp32_peak_activation_bytes = real32.PeakActivationBytes,
                    bf16_weight_bytes = real16.WeightBytes,
                    bf16_peak_activation_bytes = real16.PeakActivationBytes,
                },
                runs = repeat,
                run_seconds = times,
                spectral = spectral is null ? null : new
                {
                    encoder = spectral.ModelId,
                    width = spectral.Width,
                    seconds_per_clip = spectralMedian,
                    audio_seconds_per_second = audioSeconds / spectralMedian,
                    run_seconds = spectralTimes,
                },
            }));
            return ExitCodes.Ok;
        }
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"encoder          {folder} (width {config.Prior.Width}, {config.Layers} blocks, n_ctx {config.Prior.NCtx}, {dtype}, {torch.get_num_threads()} threads)"));
        Console.WriteLine(string.Create(inv, $"clip             {audioSeconds:F2} s of audio, {path} path"));
        Console.WriteLine(string.Create(inv, $"speed            {median:F3} s per clip, {audioSeconds / median:F2} s of audio per second (median of {repeat}: {string.Join(", ", times.Select(t => t.ToString("F3", inv)))})"));
        if (spectral is not null)
            Console.WriteLine(string.Create(inv, $"spectral         {spectralMedian:F4} s per clip, {audioSeconds / spectralMedian:F1} s of audio per second ({spectral.ModelId}, width {spectral.Width}, same rounds: {string.Join(", ", spectralTimes.Select(t => t.ToString("F4", inv)))})"));
        Console.WriteLine(string.Create(inv, $"peak memory      {peak / 1048576.0:F0} MiB resident; planned: weights {model.WeightBytes / 1048576.0:F1} MiB, activations {model.PeakActivationBytes / 1048576.0:F1} MiB"));
        Console.WriteLine(string.Create(inv, $"real 5b encoder  fp32: weights {real32.WeightBytes / 1e9:F2} GB, peak activations {real32.PeakActivationBytes / 1e9:F2} GB; " +
            $"bf16: weights {real16.WeightBytes / 1e9:F2} GB, peak activations {real16.PeakActivationBytes / 1e9:F2} GB (36 blocks, 8192 codes)"));
        return ExitCodes.Ok;
    }
}
