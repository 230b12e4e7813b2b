using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using LLark.Cli.Commands;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Language.Engine.Model;
using LLark.Language.V1;

namespace LLark.Bench.Commands;

/// <summary>
/// <c>llark-bench e2e</c>, against the system <c>tools/run.sh</c> started: per-token latency and throughput through the
/// gateway beside straight to the language service, and time to first token for a cached clip beside an uncached one.
/// </summary>
internal static class BenchE2eCommand
{
    public static Command Create()
    {
        var gateway = new Option<string>("--gateway") { Description = "gateway gRPC URL", DefaultValueFactory = _ => SystemClient.DefaultGateway };
        var language = new Option<string>("--language") { Description = "language service gRPC URL (direct)", DefaultValueFactory = _ => "http://127.0.0.1:5001" };
        var key = new Option<string?>("--api-key") { Description = "gateway API key (default: $LLARK_API_KEY, else .llark/api-key)" };
        var clip = new Option<string>("--clip") { Description = "clip to ask about", DefaultValueFactory = _ => "models/clips/tiny-test-4s.wav" };
        var tokens = new Option<int>("--new-tokens") { Description = "tokens per answer", DefaultValueFactory = _ => 128 };
        var rounds = new Option<int>("--rounds") { Description = "alternating direct/gateway rounds", DefaultValueFactory = _ => 5 };
        var streams = new Option<int>("--streams") { Description = "concurrent streams per round", DefaultValueFactory = _ => 1 };
        var uncached = new Option<int>("--uncached") { Description = "fresh clips for the uncached time to first token", DefaultValueFactory = _ => 5 };
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var prepare = new Option<string?>("--prepare")
        {
            Description = "instead of measuring: write random-weight models of --shape and --encoder-shape into this folder (language/, encoder/) and exit; tools/bench-e2e.sh starts the system on them",
        };
        var shape = new Option<string>("--shape") { Description = $"with --prepare: Llama shape ({string.Join(", ", BenchCommand.Shapes.Keys)})", DefaultValueFactory = _ => "stories15m" };
        var encoderShape = new Option<string>("--encoder-shape") { Description = "with --prepare: Jukebox shape (tiny: the bundled models/jukebox-tiny; mid)", DefaultValueFactory = _ => "mid" };
        var tokenizer = new Option<string>("--tokenizer") { Description = "with --prepare: Llama-2 tokenizer.model", DefaultValueFactory = _ => "tests/fixtures/llama2-tokenizer-model/tokenizer.model" };
        var command = new Command("e2e", "Through the gateway beside direct: per-token latency, throughput, and cached vs uncached time to first token")
        {
            gateway, language, key, clip, tokens, rounds, streams, uncached, json, prepare, shape, encoderShape, tokenizer,
        };
        command.SetAction((parse, ct) => parse.GetValue(prepare) is { } folder
            ? CliErrors.Run(() => Prepare(folder, parse.GetValue(shape)!, parse.GetValue(encoderShape)!, parse.GetValue(tokenizer)!))
            : CliErrors.Run(() => Run(parse.GetValue(gateway)!, parse.GetValue(language)!, parse.GetValue(key),
            parse.GetValue(clip)!, parse.GetValue(tokens), parse.GetValue(rounds), parse.GetValue(streams), parse.GetValue(uncached), parse.GetValue(json), ct)));
        return command;
    }

    /// <summary>Random-weight models whose sizes make the measurement mean something: a Llama whose tokens take milliseconds, and an encoder whose encode is not free.</summary>
    private static int Prepare(string folder, string shapeName, string encoderShape, string tokenizer)
    {
        if (!BenchCommand.Shapes.TryGetValue(shapeName.ToLowerInvariant(), out LlamaConfig? shape)) throw new UsageException($"unknown --shape '{shapeName}'");
        if (!File.Exists(tokenizer)) throw new FileNotFoundException($"tokenizer not found: {tokenizer} (run from the repository root or pass --tokenizer)");
        string encoderDir = Path.Combine(folder, "encoder"), languageDir = Path.Combine(folder, "language");
        int width;
        if (encoderShape.Trim().Equals("tiny", StringComparison.OrdinalIgnoreCase))
        {
            string bundled = LLark.Data.ModelLocator.Resolve(LLark.Data.ModelLocator.Encoder, null).Directory;
            Directory.CreateDirectory(encoderDir);
            foreach (string file in Directory.GetFiles(bundled)) File.Copy(file, Path.Combine(encoderDir, Path.GetFileName(file)), overwrite: true);
            width = LLark.Encoder.Engine.Model.JukeboxEncoderConfig.FromJson(File.ReadAllText(Path.Combine(encoderDir, "jukebox_encoder.json"))).Prior.Width;
        }
        else
        {
            LLark.Encoder.Engine.Model.JukeboxEncoderConfig config;
            try
            {
                config = LLark.Encoder.Engine.Model.RandomJukeboxCheckpoint.Shape(encoderShape);
            }
            catch (LLark.Encoder.Engine.Model.EncoderConfigException e)
            {
                throw new UsageException($"--encoder-shape: {e.Message}, or tiny");
            }
            LLark.Encoder.Engine.Model.RandomJukeboxCheckpoint.Write(config, encoderDir);
            width = config.Prior.Width;
        }
        BenchServeCommand.WriteRandomLLark(languageDir, shape with { VocabSize = 32004, MaxPositionEmbeddings = Math.Max(shape.MaxPositionEmbeddings, 1024) },
            tokenizer, width);
        Console.WriteLine($"wrote {languageDir} ({shapeName}, projector from width {width}) and {encoderDir} ({encoderShape})");
        return ExitCodes.Ok;
    }

    private static async Task<int> Run(string gatewayUrl, string languageUrl, string? key, string clipPath, int newTokens, int rounds, int streams,
        int uncachedClips, bool json, CancellationToken ct)
    {
        Metadata auth = SystemClient.Bearer(SystemClient.ApiKey(key));
        if (!File.Exists(clipPath)) throw new FileNotFoundException($"clip not found: {clipPath}");
        byte[] clip = await File.ReadAllBytesAsync(clipPath, ct);
        using var viaGateway = GrpcChannel.ForAddress(gatewayUrl, new GrpcChannelOptions { MaxReceiveMessageSize = 64 << 20 });
        using var direct = GrpcChannel.ForAddress(languageUrl, new GrpcChannelOptions { MaxReceiveMessageSize = 64 << 20 });
        var encoder = new EncoderService.EncoderServiceClient(viaGateway);
        var gatewayLanguage = new LanguageService.LanguageServiceClient(viaGateway);
        var directLanguage = new LanguageService.LanguageServiceClient(direct);

        EmbedResponse embedded = await encoder.EmbedAsync(new EmbedRequest { Audio = new AudioBytes { Data = ByteString.CopyFrom(clip) } }, auth, cancellationToken: ct);
        GenerateRequest ById(uint n) => SystemClient.Ask(n, r => r.EmbeddingId = embedded.EmbeddingId);

        await SystemClient.Stream(directLanguage, ById((uint)newTokens), null, ct);
        await SystemClient.Stream(gatewayLanguage, ById((uint)newTokens), auth, ct);
        var directRuns = new List<SystemClient.TimedStream>();
        var gatewayRuns = new List<SystemClient.TimedStream>();
        double directWall = 0, gatewayWall = 0;
        for (int round = 0; round < rounds; round++)
        {
            var clock = Stopwatch.StartNew();
            directRuns.AddRange(await Task.WhenAll(Enumerable.Range(0, streams).Select(_ => SystemClient.Stream(directLanguage, ById((uint)newTokens), null, ct))));
            directWall += clock.Elapsed.TotalSeconds;
            clock.Restart();
            gatewayRuns.AddRange(await Task.WhenAll(Enumerable.Range(0, streams).Select(_ => SystemClient.Stream(gatewayLanguage, ById((uint)newTokens), auth, ct))));
            gatewayWall += clock.Elapsed.TotalSeconds;
        }

        // Uncached: each clip is new to the encoder (its samples carry noise no other run uses), so the first token
        // waits for the encode. Cached: the same question about the embedded clip, by id.
        var cachedTtft = new List<double>();
        var uncachedTtft = new List<double>();
        for (int i = 0; i < uncachedClips; i++)
        {
            byte[] newClip = Perturbed(clip, i);
            uncachedTtft.Add((await SystemClient.Stream(gatewayLanguage, SystemClient.Ask(4, r => r.AudioBytes = new AudioBytes { Data = ByteString.CopyFrom(newClip) }), auth, ct)).TtftMs);
            cachedTtft.Add((await SystemClient.Stream(gatewayLanguage, ById(4), auth, ct)).TtftMs);
        }

        double directRate = directRuns.Sum(r => r.Tokens) / directWall, gatewayRate = gatewayRuns.Sum(r => r.Tokens) / gatewayWall;
        double directGap = SystemClient.Median([.. directRuns.SelectMany(r => r.GapsMs)]), gatewayGap = SystemClient.Median([.. gatewayRuns.SelectMany(r => r.GapsMs)]);
        double cached = SystemClient.Median([.. cachedTtft]), fresh = SystemClient.Median([.. uncachedTtft]);
        var result = new
        {
            streams,
            new_tokens = newTokens,
            rounds,
            direct_tokens_per_second = directRate,
            gateway_tokens_per_second = gatewayRate,
            gateway_share_of_direct = gatewayRate / directRate,
            direct_token_gap_p50_ms = directGap,
            gateway_token_gap_p50_ms = gatewayGap,
            gateway_added_p50_ms_per_token = gatewayGap - directGap,
            direct_token_gap_p99_ms = SystemClient.Percentile([.. directRuns.SelectMany(r => r.GapsMs)], 0.99),
            gateway_token_gap_p99_ms = SystemClient.Percentile([.. gatewayRuns.SelectMany(r => r.GapsMs)], 0.99),
            direct_token_gap_max_ms = directRuns.SelectMany(r => r.GapsMs).DefaultIfEmpty(double.NaN).Max(),
            gateway_token_gap_max_ms = gatewayRuns.SelectMany(r => r.GapsMs).DefaultIfEmpty(double.NaN).Max(),
            direct_ttft_p50_ms = SystemClient.Median([.. directRuns.Select(r => r.TtftMs)]),
            gateway_ttft_p50_ms = SystemClient.Median([.. gatewayRuns.Select(r => r.TtftMs)]),
            cached_clip_ttft_p50_ms = cached,
            uncached_clip_ttft_p50_ms = fresh,
            cached_share_of_uncached = cached / fresh,
        };
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(result));
            return ExitCodes.Ok;
        }
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"{rounds} rounds x {streams} stream(s) x {newTokens} tokens, alternating direct and gateway"));
        Console.WriteLine(string.Create(inv, $"throughput       direct {directRate,8:F1} tok/s   gateway {gatewayRate,8:F1} tok/s   gateway/direct {result.gateway_share_of_direct:P1}"));
        Console.WriteLine(string.Create(inv, $"token gap p50    direct {directGap,8:F3} ms      gateway {gatewayGap,8:F3} ms      added {result.gateway_added_p50_ms_per_token:F3} ms"));
        Console.WriteLine(string.Create(inv, $"token gap p99    direct {result.direct_token_gap_p99_ms,8:F3} ms      gateway {result.gateway_token_gap_p99_ms,8:F3} ms"));
        Console.WriteLine(string.Create(inv, $"token gap max    direct {result.direct_token_gap_max_ms,8:F3} ms      gateway {result.gateway_token_gap_max_ms,8:F3} ms"));
        Console.WriteLine(string.Create(inv, $"first token p50  direct {result.direct_ttft_p50_ms,8:F1} ms      gateway {result.gateway_ttft_p50_ms,8:F1} ms"));
        Console.WriteLine(string.Create(inv, $"cached clip      first token p50 {cached:F1} ms; uncached (encoded in the call) {fresh:F1} ms; cached/uncached {result.cached_share_of_uncached:P1}"));
        return ExitCodes.Ok;
    }

    /// <summary>The clip with ±1 LSB noise unique to <paramref name="index"/> on its PCM16 data: same length, new samples, new id.</summary>
    private static byte[] Perturbed(byte[] wav, int index)
    {
        byte[] copy = (byte[])wav.Clone();
        int at = 12;
        while (at + 8 <= copy.Length && System.Text.Encoding.ASCII.GetString(copy, at, 4) != "data")
            at += 8 + BitConverter.ToInt32(copy, at + 4);
        if (at + 8 > copy.Length) throw new UsageException("--clip must be a PCM16 WAV file for the uncached measurement");
        // Noise rather than a scale: peak normalisation would undo a scale and give the same samples and id.
        var random = new Random(1000 + index);
        for (int i = at + 8; i + 1 < copy.Length; i += 2)
        {
            int sample = BitConverter.ToInt16(copy, i) + random.Next(-1, 2);
            BitConverter.TryWriteBytes(copy.AsSpan(i), (short)Math.Clamp(sample, short.MinValue, short.MaxValue));
        }
        return copy;
    }
}
