using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using LLark.Cli.Commands;
using LLark.Language.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Bench.Commands;

/// <summary>
/// <c>llark-bench batch</c>: the batched decode step alone (<see cref="LlamaForCausalLM.DecodeBatch(IReadOnlyList{int}, BatchKvCache)"/>: no service, no
/// sampling) at several batch sizes; prints milliseconds a step and aggregate tokens/s, and the prefill of one
/// <c>--context</c>-row prompt by the managed kernels and by libtorch on one thread (the service's default).
/// </summary>
internal static class BenchBatchCommand
{
    public static Command Create()
    {
        var shape = new Option<string>("--shape") { Description = $"Llama shape (random fp32 weights): {string.Join(", ", BenchCommand.Shapes.Keys)}", DefaultValueFactory = _ => "stories15m" };
        var batches = new Option<string>("--batches") { Description = "comma-separated batch sizes", DefaultValueFactory = _ => "1,4,8,16" };
        var context = new Option<int>("--context") { Description = "tokens already in each sequence's cache when timing starts", DefaultValueFactory = _ => 64 };
        var steps = new Option<int>("--steps") { Description = "decode steps timed per batch size (after 8 warm-up steps)", DefaultValueFactory = _ => 64 };
        var weights = BenchCommand.WeightsOption();
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var command = new Command("batch", "Speed of the batched decode step alone at several batch sizes") { shape, batches, context, steps, weights, json };
        command.SetAction(parse => CliErrors.Run(() => Run(parse.GetValue(shape)!, parse.GetValue(batches)!, parse.GetValue(context),
            parse.GetValue(steps), WeightFormats.Parse(parse.GetValue(weights)!), parse.GetValue(json))));
        return command;
    }

    private sealed record Row(int Batch, double StepMs, double TokensPerSecond, double Speedup);

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>libtorch's figure is NaN for packed weights, which only the managed kernels run.</summary>
    private sealed record Prefill(int Rows, double ManagedMs, double LibTorchOneThreadMs);

    private static int Run(string shapeName, string batchList, int context, int steps, WeightFormat weights, bool json)
    {
        if (!BenchCommand.Shapes.TryGetValue(shapeName.ToLowerInvariant(), out LlamaConfig? shape)) throw new UsageException($"unknown shape '{shapeName}'");
        int[] sizes = [.. batchList.Split(',').Select(s => int.TryParse(s, CultureInfo.InvariantCulture, out int n) && n > 0 ? n
            : throw new UsageException($"--batches: '{s}' is not a positive size"))];
        if (context < 1 || steps < 1) throw new UsageException("--context and --steps must be >= 1");
        int capacity = context + steps + 8;
        if (capacity > shape.MaxPositionEmbeddings) throw new UsageException($"--context + --steps + 8 exceed the context of {shape.MaxPositionEmbeddings}");

        using LlamaForCausalLM model = BenchCommand.RandomModel(shape, ScalarType.Float32);
        model.PackWeights(weights);
        model.WarmUp();
        var rows = new List<Row>();
        foreach (int n in sizes)
        {
            double ms = TimeSteps(model, n, context, steps);
            double rate = n * 1000 / ms;
            double baseline = rows.FirstOrDefault(r => r.Batch == 1)?.TokensPerSecond ?? (n == 1 ? rate : double.NaN);
            rows.Add(new Row(n, ms, rate, rate / baseline));
        }
        var prefill = new Prefill(context, TimePrefill(model, context, managed: true), weights == WeightFormat.Fp32 ? TimePrefill(model, context, managed: false) : double.NaN);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new { shape = shapeName, weights = weights.Name(), context, steps, rows, prefill }, JsonOptions));
            return ExitCodes.Ok;
        }
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"batched decode step, {shapeName} (random weights, {weights.Name()}), {context} cached tokens a sequence, median of {steps} steps"));
        Console.WriteLine("batch  ms/step  aggregate tok/s  vs batch 1");
        foreach (Row r in rows)
            Console.WriteLine(string.Create(inv, $"{r.Batch,5}  {r.StepMs,7:F2}  {r.TokensPerSecond,15:F1}  {r.Speedup,9:F2}x"));
        Console.WriteLine(string.Create(inv,
            $"prefill of {prefill.Rows} rows (last position's logits), median of 16: managed {prefill.ManagedMs:F2} ms, libtorch on one thread {prefill.LibTorchOneThreadMs:F2} ms"));
        return ExitCodes.Ok;
    }

    /// <summary>Median milliseconds of a prefill of <paramref name="rows"/> random embeddings into an empty cache, after 8 warm-up runs.</summary>
    private static double TimePrefill(LlamaForCausalLM model, int rows, bool managed)
    {
        using KvCache cache = model.NewCache(rows);
        using Tensor embeds = randn(1, rows, model.Config.HiddenSize);
        using (Scalar scale = 0.02) embeds.mul_(scale);
        using var threads = TorchThreadScope.Use(1);
        var times = new List<double>();
        for (int s = 0; s < 24; s++)
        {
            cache.Reset();
            using var scope = NewDisposeScope();
            long start = Stopwatch.GetTimestamp();
            if (managed) model.Forward(embeds, cache, lastOnly: true);
            else model.ForwardLibTorch(embeds, cache, lastOnly: true);
            if (s >= 8) times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        times.Sort();
        return times[times.Count / 2];
    }

    /// <summary>Median milliseconds of one step for n sequences, each with <paramref name="context"/> tokens cached.</summary>
    private static double TimeSteps(LlamaForCausalLM model, int n, int context, int steps)
    {
        using BatchKvCache cache = model.NewBatchCache(n, context + steps + 8);
        var random = new Random(n);
        for (int i = 0; i < n; i++)
        {
            using var scope = NewDisposeScope();
            long[] prompt = [.. Enumerable.Range(0, context).Select(_ => (long)random.Next(3, model.Config.VocabSize))];
            model.ForwardIds(tensor(prompt).unsqueeze(0), cache.Slot(i));
        }
        int[] ids = [.. Enumerable.Range(0, n).Select(_ => random.Next(3, model.Config.VocabSize))];
        var times = new List<double>();
        for (int s = 0; s < steps + 8; s++)
        {
            long start = Stopwatch.GetTimestamp();
            model.DecodeBatch(ids, cache).Dispose();
            if (s >= 8) times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        times.Sort();
        return times[times.Count / 2];
    }
}
