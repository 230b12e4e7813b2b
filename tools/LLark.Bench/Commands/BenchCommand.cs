using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using LLark.Cli.Commands;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Bench.Commands;

/// <summary><c>llark-bench generate</c>: prefill and decode speed, time to first token and peak memory.</summary>
internal static class BenchCommand
{
    /// <summary>Shapes of public checkpoints, for benchmarking with random weights when no model is at hand.</summary>
    internal static readonly IReadOnlyDictionary<string, LlamaConfig> Shapes = new Dictionary<string, LlamaConfig>
    {
        ["stories15m"] = Shape(dim: 288, layers: 6, heads: 6, ffn: 768, vocab: 32000, context: 256),
        ["stories110m"] = Shape(dim: 768, layers: 12, heads: 12, ffn: 2048, vocab: 32000, context: 1024),
        ["tinyllama"] = Shape(dim: 2048, layers: 22, heads: 32, ffn: 5632, vocab: 32000, context: 2048, kvHeads: 4),
        ["llama2-7b"] = Shape(dim: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 32000, context: 4096),
    };

    private static LlamaConfig Shape(int dim, int layers, int heads, int ffn, int vocab, int context, int? kvHeads = null) => new()
    {
        HiddenSize = dim,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        NumKeyValueHeads = kvHeads ?? heads,
        IntermediateSize = ffn,
        VocabSize = vocab,
        MaxPositionEmbeddings = context,
        RmsNormEps = 1e-5,
        RopeTheta = 10000,
    };

    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "Hugging Face Llama folder to benchmark" };
        var shape = new Option<string?>("--shape") { Description = $"random weights of a known shape instead: {string.Join(", ", Shapes.Keys)}" };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "prompt length for prefill", DefaultValueFactory = _ => 32 };
        var newTokens = new Option<int>("--new-tokens") { Description = "tokens to decode (greedy, EOS ignored)", DefaultValueFactory = _ => 200 };
        var repeat = new Option<int>("--repeat") { Description = "runs; the median is reported", DefaultValueFactory = _ => 3 };
        var threads = new Option<int?>("--threads") { Description = "libtorch intra-op threads (default: libtorch's choice)" };
        var dtype = new Option<string>("--dtype") { Description = "fp32, fp16 or bf16", DefaultValueFactory = _ => "fp32" };
        var weights = WeightsOption();
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var export = new Option<string?>("--export-llama2c") { Description = "also write the benchmarked model as a llama2.c run.c checkpoint (legacy format) to this path" };
        var printTokens = new Option<bool>("--print-tokens") { Description = "print the prompt and generated token ids of the last run to stderr" };

        var generate = new Command("generate", "Measure prefill and decode speed of a Llama model")
        {
            model, shape, promptTokens, newTokens, repeat, threads, dtype, weights, json, export, printTokens,
        };
        generate.SetAction(parse => Run(parse.GetValue(model), parse.GetValue(shape), parse.GetValue(promptTokens),
            parse.GetValue(newTokens), parse.GetValue(repeat), parse.GetValue(threads), parse.GetValue(dtype)!,
            WeightFormats.Parse(parse.GetValue(weights)!), parse.GetValue(json), parse.GetValue(export), parse.GetValue(printTokens)));
        return generate;
    }

    private static int Run(string? modelDir, string? shapeName, int promptTokens, int newTokens, int repeat, int? threads,
        string dtypeName, WeightFormat weightFormat, bool json, string? exportPath, bool printTokens)
    {
        if ((modelDir is null) == (shapeName is null))
        {
            Console.Error.WriteLine("error: give exactly one of --model and --shape");
            return ExitCodes.Usage;
        }
        if (promptTokens < 1 || newTokens < 1 || repeat < 1)
        {
            Console.Error.WriteLine("error: --prompt-tokens, --new-tokens and --repeat must be >= 1");
            return ExitCodes.Usage;
        }
        if (threads is { } n) torch.set_num_threads(n);
        ScalarType dtype = LlamaLoader.ParseDType(dtypeName);

        var loadClock = Stopwatch.StartNew();
        using LlamaForCausalLM llama = modelDir is not null
            ? LlamaLoader.Load(modelDir, new LlamaLoadOptions { DType = dtype })
            : RandomModel(Shapes.TryGetValue(shapeName!.ToLowerInvariant(), out LlamaConfig? c) ? c
                : throw new ArgumentException($"unknown shape '{shapeName}'"), dtype);
        // The export is of the float32 weights, so it comes before packing.
        if (exportPath is not null) Llama2cExport.Write(llama, exportPath);
        // What the language service does after loading.
        llama.PackWeights(weightFormat);
        llama.WarmUp();
        double loadSeconds = loadClock.Elapsed.TotalSeconds;
        LlamaConfig config = llama.Config;
        if (promptTokens + newTokens > config.MaxPositionEmbeddings)
        {
            Console.Error.WriteLine($"error: {promptTokens} + {newTokens} tokens exceed the context of {config.MaxPositionEmbeddings}");
            return ExitCodes.Usage;
        }

        // BOS, then random ids: a one-token prompt is what llama2.c's run.c feeds when given no prompt.
        var random = new Random(1234);
        int[] prompt = Enumerable.Range(0, promptTokens).Select(i => i == 0 ? config.BosTokenId ?? 1 : random.Next(3, config.VocabSize)).ToArray();
        var generator = new TextGenerator(llama);
        var options = new GenerationOptions { MaxNewTokens = newTokens, StopOnEos = false };

        // The first run is reported on its own: it is what a freshly started service's first request gets (code not yet
        // compiled, buffers not yet allocated), and the median of the runs after it is the steady state.
        (double Prefill, double Decode, double Ttft) first = Measure(generator, prompt, options, null);
        var last = new List<int>();
        var runs = Enumerable.Range(0, repeat).Select(_ => Measure(generator, prompt, options, last)).ToList();
        if (printTokens)
            Console.Error.WriteLine($"prompt ids {string.Join(' ', prompt)}\ngenerated ids {string.Join(' ', last)}");
        double Median(Func<(double Prefill, double Decode, double Ttft), double> f)
        {
            var v = runs.Select(f).OrderBy(x => x).ToArray();
            return v[v.Length / 2];
        }
        double prefill = Median(r => r.Prefill), decode = Median(r => r.Decode), ttft = Median(r => r.Ttft);
        long peak = PeakResidentBytes();
        long parameters = config.ParameterCount;
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                model = modelDir ?? shapeName,
                parameters,
                dtype = dtype.ToString(),
                weights = weightFormat.Name(),
                threads = torch.get_num_threads(),
                prompt_tokens = promptTokens,
                new_tokens = newTokens,
                load_seconds = loadSeconds,
                prefill_tokens_per_second = prefill,
                decode_tokens_per_second = decode,
                time_to_first_token_ms = ttft * 1000,
                first_run_prefill_tokens_per_second = first.Prefill,
                first_run_decode_tokens_per_second = first.Decode,
                peak_rss_bytes = peak,
                rss_bytes = SystemClient.ProcStatusBytes("self", "VmRSS") ?? -1,
                weight_bytes_per_token = llama.StepWeightBytes,
                runs = repeat,
            }));
        }
        else
        {
            var inv = CultureInfo.InvariantCulture;
            Console.WriteLine(string.Create(inv, $"model            {modelDir ?? shapeName} ({parameters / 1e6:F1}M parameters, {dtype}, {weightFormat.Name()} weights, {torch.get_num_threads()} threads)"));
            Console.WriteLine(string.Create(inv, $"load             {loadSeconds:F2} s"));
            Console.WriteLine(string.Create(inv, $"prefill          {prefill:F1} tokens/s ({promptTokens} tokens)"));
            Console.WriteLine(string.Create(inv, $"decode           {decode:F1} tokens/s ({newTokens} tokens, greedy, median of {repeat})"));
            Console.WriteLine(string.Create(inv, $"first token      {ttft * 1000:F1} ms"));
            Console.WriteLine(string.Create(inv, $"first run        prefill {first.Prefill:F1} tokens/s, decode {first.Decode:F1} tokens/s (before the runs above)"));
            Console.WriteLine(string.Create(inv, $"peak memory      {peak / 1048576.0:F0} MiB resident"));
        }
        return ExitCodes.Ok;
    }

    private static (double Prefill, double Decode, double Ttft) Measure(TextGenerator generator, int[] prompt, GenerationOptions options,
        List<int>? tokens)
    {
        GenerationResult? result = null;
        foreach (GenerationUpdate update in generator.Generate(prompt, NullTextDecoder.Instance, options))
            result = update.Result ?? result;
        if (tokens is not null)
        {
            tokens.Clear();
            tokens.AddRange(result!.TokenIds);
        }
        double ttft = result!.TimeToFirstToken.TotalSeconds;
        // Decode time covers the tokens after the first, which prefill produced.
        double decode = (result.TokenIds.Count - 1) / result.DecodeTime.TotalSeconds;
        return (prompt.Length / ttft, decode, ttft);
    }

    /// <summary>The <c>--weights</c> option: how the managed CPU kernels hold the projections and the head.</summary>
    internal static Option<string> WeightsOption() => new("--weights")
    {
        Description = "fp32, bf16 or int8: how the managed CPU kernels hold the projections and the head (activations stay fp32)",
        DefaultValueFactory = _ => "fp32",
    };

    /// <summary>A model of the given shape with N(0, 0.02) weights and unit norms.</summary>
    internal static LlamaForCausalLM RandomModel(LlamaConfig config, ScalarType dtype)
    {
        var model = new LlamaForCausalLM(config, dtype);
        using var noGrad = no_grad();
        var generator = new Generator(20251125);
        foreach ((string name, Tensor p) in model.CheckpointParameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.fill_(LLark.Checkpoints.KeptScalars.One);
            else p.normal_(0, 0.02, generator);
        }
        model.eval();
        return model;
    }

    /// <summary>VmHWM from /proc: the most resident memory the process has held; -1 without /proc.</summary>
    internal static long PeakResidentBytes() => SystemClient.ProcStatusBytes("self", "VmHWM") ?? -1;
}
