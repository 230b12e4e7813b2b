using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using LLark.Checkpoints;
using LLark.Cli.Commands;
using LLark.Common.V1;
using LLark.Language.Engine.Model;
using LLark.Language.Service;
using LLark.Language.V1;
using LLark.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Bench.Commands;

/// <summary>
/// <c>llark-bench serve</c>: the language service on loopback with a random-weight LLark of a known shape, driven by
/// 1, 4, 8 and 16 concurrent gRPC streams; prints aggregate decode tokens/s and client-side time to first token, each
/// row the median of --rounds rounds measured in turn with the other rows.
/// </summary>
internal static class BenchServeCommand
{
    public static Command Create()
    {
        var shape = new Option<string>("--shape") { Description = $"Llama shape: {string.Join(", ", BenchCommand.Shapes.Keys)}", DefaultValueFactory = _ => "stories15m" };
        var streams = new Option<string>("--streams") { Description = "comma-separated concurrent stream counts", DefaultValueFactory = _ => "1,4,8,16" };
        var newTokens = new Option<int>("--new-tokens") { Description = "tokens per stream (EOS ignored)", DefaultValueFactory = _ => 128 };
        var frames = new Option<int>("--audio-frames") { Description = "audio frames per request (width 4800)", DefaultValueFactory = _ => 25 };
        var tokenizer = new Option<string>("--tokenizer") { Description = "Llama-2 tokenizer.model", DefaultValueFactory = _ => "tests/fixtures/llama2-tokenizer-model/tokenizer.model" };
        var rounds = new Option<int>("--rounds") { Description = "rounds of every row, interleaved; each row reports its median round", DefaultValueFactory = _ => 3 };
        var weights = BenchCommand.WeightsOption();
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var command = new Command("serve", "Aggregate throughput and time to first token of the language service under concurrent streams")
        {
            shape, streams, newTokens, frames, tokenizer, rounds, weights, json,
        };
        command.SetAction((parse, ct) => CliErrors.Run(() => Run(parse.GetValue(shape)!, parse.GetValue(streams)!, parse.GetValue(newTokens),
            parse.GetValue(frames), parse.GetValue(tokenizer)!, parse.GetValue(rounds), parse.GetValue(weights)!, parse.GetValue(json), ct)));
        return command;
    }

    private sealed record Row(int Streams, int Requests, double AggregateTokensPerSecond, double PerStreamTokensPerSecond, double TtftP50Ms, double TtftP99Ms,
        int StoppedEarly, double Speedup, double[] RoundsTokensPerSecond);

    private static async Task<int> Run(string shapeName, string streamList, int newTokens, int audioFrames, string tokenizer, int rounds, string weights,
        bool json, CancellationToken ct)
    {
        if (rounds < 1) throw new UsageException("--rounds must be >= 1");
        if (!BenchCommand.Shapes.TryGetValue(shapeName.ToLowerInvariant(), out LlamaConfig? shape)) throw new UsageException($"unknown shape '{shapeName}'");
        int[] counts = [.. streamList.Split(',').Select(s => int.TryParse(s, CultureInfo.InvariantCulture, out int n) && n > 0 ? n
            : throw new UsageException($"--streams: '{s}' is not a positive count"))];
        if (!File.Exists(tokenizer)) throw new FileNotFoundException($"tokenizer not found: {tokenizer} (run from the repository root or pass --tokenizer)");

        string dir = Path.Combine(Path.GetTempPath(), $"llark-bench-serve-{Environment.ProcessId}");
        WriteRandomLLark(dir, shape with { VocabSize = 32004, MaxPositionEmbeddings = Math.Max(shape.MaxPositionEmbeddings, 512) }, tokenizer);
        try
        {
            WebApplication app = LanguageServiceHost.Build([], builder => builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["LLark:Listen:Address"] = "127.0.0.1",
                ["LLark:Listen:GrpcPort"] = "0",
                ["LLark:Listen:HttpPort"] = "-1",
                ["LLark:Language:ModelPath"] = dir,
                ["LLark:Language:Weights"] = weights,
                ["LLark:Language:MaxBatchSize"] = counts.Max().ToString(CultureInfo.InvariantCulture),
                ["LLark:Language:MaxQueuedRequests"] = "1024",
                ["Logging:LogLevel:Default"] = "Warning",
            }));
            await app.StartAsync(ct).ConfigureAwait(false);
            await using (app.ConfigureAwait(false))
            {
                using GrpcChannel channel = GrpcChannel.ForAddress(app.BoundAddresses()[0]);
                await WaitServing(channel, ct).ConfigureAwait(false);
                var client = new LanguageService.LanguageServiceClient(channel);
                // Warm-up: the one-sequence and the batched decode paths both, so that no measured round pays for the
                // JIT compiling them (tiered compilation starts every method unoptimised).
                await Measure(client, 1, newTokens, audioFrames, ct).ConfigureAwait(false);
                await Measure(client, counts.Max(), newTokens, audioFrames, ct).ConfigureAwait(false);
                // One stream runs the same requests (the same seeds) as the widest row, one after another, so that every row
                // does the same work per request. With ignore_eos no stop string applies, so every request should run to
                // --new-tokens; the "stopped early" column shows any that did not.
                int baselineRequests = counts.Max();
                // Rows are measured in turn, round after round, so that a slow spell of a shared machine falls on every row
                // alike rather than on whichever row it happened to meet; each row reports its median round.
                var measured = counts.ToDictionary(n => n, _ => new List<Result>());
                for (int round = 0; round < rounds; round++)
                {
                    foreach (int n in counts)
                    {
                        measured[n].Add(n == 1 ? await MeasureInTurn(client, baselineRequests, newTokens, audioFrames, ct).ConfigureAwait(false)
                            : await Measure(client, n, newTokens, audioFrames, ct).ConfigureAwait(false));
                    }
                }
                var rows = new List<Row>();
                foreach (int n in counts)
                {
                    List<Result> all = measured[n];
                    Result r = all.OrderBy(x => x.Aggregate).ElementAt(all.Count / 2);
                    double baseline = rows.FirstOrDefault(x => x.Streams == 1)?.AggregateTokensPerSecond ?? (n == 1 ? r.Aggregate : double.NaN);
                    rows.Add(new Row(n, r.Requests, r.Aggregate, r.PerStream, r.P50, r.P99, r.StoppedEarly, r.Aggregate / baseline,
                        [.. all.Select(x => Math.Round(x.Aggregate, 1))]));
                }
                Print(rows, shapeName, newTokens, audioFrames, json);
                await app.StopAsync(ct).ConfigureAwait(false);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
        return ExitCodes.Ok;
    }

    private sealed record Result(int Requests, double Aggregate, double PerStream, double P50, double P99, int StoppedEarly);

    /// <summary><paramref name="streams"/> requests at once (seeds 0 to streams - 1): tokens over the wall time until the last ends.</summary>
    private static async Task<Result> Measure(LanguageService.LanguageServiceClient client, int streams, int newTokens, int audioFrames, CancellationToken ct)
    {
        GenerateRequest[] requests = [.. Enumerable.Range(0, streams).Select(i => NewRequest(i, newTokens, audioFrames))];
        var clock = Stopwatch.StartNew();
        var results = await Task.WhenAll(requests.Select(r => OneStream(client, r, ct))).ConfigureAwait(false);
        return Summarise(results, clock.Elapsed.TotalSeconds, newTokens);
    }

    /// <summary>The same requests one at a time: their tokens over the sum of their times.</summary>
    private static async Task<Result> MeasureInTurn(LanguageService.LanguageServiceClient client, int requests, int newTokens, int audioFrames, CancellationToken ct)
    {
        var results = new List<(int Tokens, double Seconds, double TtftMs)>();
        for (int i = 0; i < requests; i++) results.Add(await OneStream(client, NewRequest(i, newTokens, audioFrames), ct).ConfigureAwait(false));
        return Summarise([.. results], results.Sum(r => r.Seconds), newTokens);
    }

    private static Result Summarise((int Tokens, double Seconds, double TtftMs)[] results, double wall, int newTokens)
    {
        double[] ttft = [.. results.Select(r => r.TtftMs).Order()];
        double Percentile(double p) => ttft[Math.Min(ttft.Length - 1, (int)Math.Ceiling(p * ttft.Length) - 1)];
        return new Result(results.Length, results.Sum(r => r.Tokens) / wall, results.Average(r => r.Tokens / r.Seconds), Percentile(0.5), Percentile(0.99),
            results.Count(r => r.Tokens < newTokens));
    }

    /// <summary>Request <paramref name="seed"/>: random frames and sampling seeded by it, built before any clock starts.</summary>
    private static GenerateRequest NewRequest(int seed, int newTokens, int audioFrames)
    {
        var random = new Random(seed);
        float[] values = [.. Enumerable.Range(0, audioFrames * 4800).Select(_ => (float)random.NextDouble())];
        var request = new GenerateRequest
        {
            Frames = EmbeddingFramesCodec.Encode(values, 4800, 25, FrameDType.Float32),
            Stopping = new StoppingParameters { MaxNewTokens = (uint)newTokens, IgnoreEos = true },
            Sampling = new SamplingParameters { Temperature = 0.8f, Seed = (ulong)seed },
        };
        request.Turns.Add(new LLark.Language.V1.ChatTurn { Human = "Describe this clip in detail." });
        return request;
    }

    private static async Task<(int Tokens, double Seconds, double TtftMs)> OneStream(LanguageService.LanguageServiceClient client, GenerateRequest request,
        CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        double ttft = 0;
        int tokens = 0;
        using var call = client.Generate(request, cancellationToken: ct);
        await foreach (GenerateResponse response in call.ResponseStream.ReadAllAsync(ct).ConfigureAwait(false))
        {
            if (ttft == 0) ttft = clock.Elapsed.TotalMilliseconds;
            if (response.FrameCase == GenerateResponse.FrameOneofCase.Final) tokens = (int)response.Final.Usage.GeneratedTokens;
        }
        return (tokens, clock.Elapsed.TotalSeconds, ttft);
    }

    private static async Task WaitServing(GrpcChannel channel, CancellationToken ct)
    {
        var health = new Health.HealthClient(channel);
        while ((await health.CheckAsync(new HealthCheckRequest(), cancellationToken: ct)).Status != HealthCheckResponse.Types.ServingStatus.Serving)
            await Task.Delay(50, ct).ConfigureAwait(false);
    }

    private static void Print(List<Row> rows, string shape, int newTokens, int audioFrames, bool json)
    {
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new { shape, new_tokens = newTokens, audio_frames = audioFrames, rows }));
            return;
        }
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"language service on loopback, {shape} (random weights, fp32), {newTokens} new tokens a stream, {audioFrames} audio frames"));
        Console.WriteLine("streams  requests  aggregate tok/s  per-stream tok/s  TTFT p50 ms  TTFT p99 ms  stopped early  vs 1 stream");
        foreach (Row r in rows)
            Console.WriteLine(string.Create(inv, $"{r.Streams,7}  {r.Requests,8}  {r.AggregateTokensPerSecond,15:F1}  {r.PerStreamTokensPerSecond,16:F1}  {r.TtftP50Ms,11:F1}  {r.TtftP99Ms,11:F1}  {r.StoppedEarly,13}  {r.Speedup,10:F2}x"));
        if (rows.Any(r => r.Streams == 1))
            Console.WriteLine(string.Create(inv, $"1 stream: the {rows.First(r => r.Streams == 1).Requests} requests of the widest row (same seeds), one at a time; stopped early: requests that ended before --new-tokens"));
        Console.WriteLine(string.Create(inv, $"each row: the median of {rows[0].RoundsTokensPerSecond.Length} rounds, rows interleaved; aggregate tok/s of every round:"));
        foreach (Row r in rows)
            Console.WriteLine(string.Create(inv, $"{r.Streams,7}  {string.Join("  ", r.RoundsTokensPerSecond.Select(v => v.ToString("F1", inv)))}"));
    }

    /// <summary>A random LLark checkpoint of the given Llama shape with a projector from <paramref name="audioWidth"/> (4800: Jukebox-5B) at 25 fps.</summary>
    internal static void WriteRandomLLark(string dir, LlamaConfig config, string tokenizer, int audioWidth = 4800)
    {
        Directory.CreateDirectory(dir);
        File.Copy(tokenizer, Path.Combine(dir, "tokenizer.model"), overwrite: true);
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model_type"] = "llama",
            ["hidden_size"] = config.HiddenSize,
            ["intermediate_size"] = config.IntermediateSize,
            ["num_hidden_layers"] = config.NumHiddenLayers,
            ["num_attention_heads"] = config.NumAttentionHeads,
            ["num_key_value_heads"] = config.KeyValueHeads,
            ["vocab_size"] = config.VocabSize,
            ["max_position_embeddings"] = config.MaxPositionEmbeddings,
            ["rms_norm_eps"] = config.RmsNormEps,
            ["rope_theta"] = config.RopeTheta,
            ["bos_token_id"] = 1,
            ["eos_token_id"] = 2,
            ["mm_hidden_size"] = audioWidth,
            ["mm_audio_fps"] = 25,
        }));
        using LlamaForCausalLM model = BenchCommand.RandomModel(config, ScalarType.Float32);
        using var scope = NewDisposeScope();
        var generator = new Generator(7);
        var tensors = model.CheckpointParameters().ToList();
        using (Scalar scale = 0.01) tensors.Add(new("model.mm_projector.weight", randn([config.HiddenSize, audioWidth], generator: generator).mul_(scale)));
        tensors.Add(new("model.mm_projector.bias", zeros(config.HiddenSize)));
        SafetensorsWriter.Save(Path.Combine(dir, "model.safetensors"), tensors);
    }
}
