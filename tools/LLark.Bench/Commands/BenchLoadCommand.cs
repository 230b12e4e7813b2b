using System.Collections.Concurrent;
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
using LLark.Language.V1;

namespace LLark.Bench.Commands;

/// <summary>
/// <c>llark-bench load</c>, against a running system (tools/run.sh): the bundled clip is uploaded once, then
/// <c>--streams</c> workers ask about it by embedding id for <c>--seconds</c>, and/or <c>--soak</c> requests run one
/// after another, and/or <c>--uploads</c> copies of a large clip are embedded at once. Each phase reports requests,
/// errors by status, time to first token, aggregate tokens/s, and the resident memory of each service process before
/// and after (and its peak, and after the first 100 soak requests), so that a leak shows as growth over a soak and a
/// large upload's cost as the peak.
/// </summary>
internal static class BenchLoadCommand
{
    public static Command Create()
    {
        var gateway = new Option<string>("--gateway") { Description = "gateway gRPC URL", DefaultValueFactory = _ => SystemClient.DefaultGateway };
        var key = new Option<string?>("--api-key") { Description = "gateway API key (default: $LLARK_API_KEY, else .llark/api-key)" };
        var clip = new Option<string>("--clip") { Description = "clip to upload once and ask about", DefaultValueFactory = _ => "models/clips/demo-heldout-electric-piano-eb-major.wav" };
        var streams = new Option<int>("--streams") { Description = "concurrent Generate streams in the timed phase", DefaultValueFactory = _ => 8 };
        var seconds = new Option<double?>("--seconds") { Description = "length of the timed phase (default 30, or none when only --soak is given)" };
        var soak = new Option<int>("--soak") { Description = "sequential requests in the soak phase (default 0: none)" };
        var tokens = new Option<int>("--new-tokens") { Description = "tokens per answer", DefaultValueFactory = _ => 32 };
        var pids = new Option<string?>("--pids")
        {
            Description = "processes whose memory to report, as name=pid or pid, comma-separated (default: the PIDs tools/run.sh records in $LLARK_STATE/pids, .llark/pids)",
        };
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var uploads = new Option<int>("--uploads") { Description = "Embed calls of --upload-clip sent at once in the upload phase (default 0: none)" };
        var uploadClip = new Option<string?>("--upload-clip") { Description = "the large clip the upload phase sends (default: --clip)" };
        var uploadChunk = new Option<int>("--upload-chunk-bytes")
        {
            Description = "send each upload with EmbedStream in chunks of this many bytes (a WAV is then decoded as it arrives) instead of one Embed message (default 0: Embed)",
        };
        var soakMark = new Option<int>("--soak-mark")
        {
            Description = "soak requests after which memory is read again, so that growth is measured past the warm-up", DefaultValueFactory = _ => 100,
        };
        var idle = new Option<double>("--idle-seconds") { Description = "after the upload phase, how long to wait before reading memory again", DefaultValueFactory = _ => 30 };
        var command = new Command("load", "Concurrent streams for a time, a sequential soak and/or concurrent uploads through the gateway: errors, TTFT, tokens/s, service memory")
        {
            gateway, key, clip, streams, seconds, soak, soakMark, tokens, pids, json, uploads, uploadClip, uploadChunk, idle,
        };
        command.SetAction((parse, ct) => CliErrors.Run(() => Run(parse.GetValue(gateway)!, parse.GetValue(key), parse.GetValue(clip)!, parse.GetValue(streams),
            parse.GetValue(seconds), parse.GetValue(soak), parse.GetValue(soakMark), parse.GetValue(tokens), parse.GetValue(pids), parse.GetValue(json),
            parse.GetValue(uploads), parse.GetValue(uploadClip), parse.GetValue(uploadChunk), parse.GetValue(idle), ct)));
        return command;
    }

    /// <summary>A process's resident memory: at the phase's start and end, its peak (sampled), and at the phase's mark (after the first 100 soak requests, or after the idle wait that follows the uploads).</summary>
    internal sealed record Memory(string Name, int Pid, long? StartBytes, long? EndBytes, long? PeakBytes, long? MarkBytes);

    internal sealed record Phase(string Name, int Streams, int Requests, SortedDictionary<string, int> Errors, double TtftP50Ms, double TtftP99Ms,
        long Tokens, double Seconds, double TokensPerSecond, List<Memory> Memory);

    private static async Task<int> Run(string gatewayUrl, string? key, string clipPath, int streams, double? seconds, int soak, int soakMark, int newTokens, string? pidList,
        bool json, int uploads, string? uploadPath, int uploadChunk, double idleSeconds, CancellationToken ct)
    {
        double timed = seconds ?? (soak > 0 || uploads > 0 ? 0 : 30);
        if (timed < 0 || soak < 0 || uploads < 0 || timed == 0 && soak == 0 && uploads == 0)
            throw new UsageException("nothing to run: give --seconds > 0 (with --streams), --soak > 0 and/or --uploads > 0");
        if (idleSeconds < 0) throw new UsageException("--idle-seconds must be >= 0");
        if (uploadChunk < 0) throw new UsageException("--upload-chunk-bytes must be >= 0 (0: one Embed message)");
        uploadPath ??= clipPath;
        if (uploads > 0 && !File.Exists(uploadPath)) throw new FileNotFoundException($"upload clip not found: {uploadPath}");
        if (timed > 0 && streams < 1) throw new UsageException("--streams must be >= 1");
        if (newTokens < 1) throw new UsageException("--new-tokens must be >= 1");
        if (!File.Exists(clipPath)) throw new FileNotFoundException($"clip not found: {clipPath} (run from the repository root or pass --clip)");
        var processes = Processes(pidList);
        Metadata auth = SystemClient.Bearer(SystemClient.ApiKey(key));
        using var channel = GrpcChannel.ForAddress(gatewayUrl, new GrpcChannelOptions { MaxSendMessageSize = 64 << 20, MaxReceiveMessageSize = 64 << 20 });
        var encoder = new EncoderService.EncoderServiceClient(channel);
        var language = new LanguageService.LanguageServiceClient(channel);

        byte[] clip = await File.ReadAllBytesAsync(clipPath, ct).ConfigureAwait(false);
        EmbedResponse embedded = await encoder.EmbedAsync(new EmbedRequest { Audio = new AudioBytes { Data = ByteString.CopyFrom(clip), Filename = Path.GetFileName(clipPath) } },
            auth, cancellationToken: ct).ConfigureAwait(false);
        GenerateRequest ask = SystemClient.Ask((uint)newTokens, r => r.EmbeddingId = embedded.EmbeddingId);

        var phases = new List<Phase>();
        var results = new ConcurrentBag<(SystemClient.TimedStream? Stream, string? Error)>();
        if (timed > 0)
            phases.Add(await Measure("timed", streams, processes, (deadline, _) => Task.WhenAll(Enumerable.Range(0, streams).Select(_ => Worker(deadline))), results, ct)
                .ConfigureAwait(false));
        if (soak > 0)
            phases.Add(await Measure("soak", 1, processes, async (_, mark) =>
            {
                for (int i = 0; i < soak; i++)
                {
                    await One().ConfigureAwait(false);
                    if (i + 1 == soakMark) mark();
                }
            }, results, ct).ConfigureAwait(false));
        if (uploads > 0)
        {
            byte[] large = await File.ReadAllBytesAsync(uploadPath, ct).ConfigureAwait(false);
            phases.Add(await Measure("uploads", uploads, processes, async (_, mark) =>
            {
                await Task.WhenAll(Enumerable.Range(0, uploads).Select(i => Upload(large, Path.GetFileName(uploadPath), i))).ConfigureAwait(false);
                await Task.Delay(TimeSpan.FromSeconds(idleSeconds), ct).ConfigureAwait(false);
                mark();
            }, results, ct).ConfigureAwait(false));
        }
        Print(phases, newTokens, embedded.EmbeddingId, soakMark, json);
        return ExitCodes.Ok;

        async Task Worker(Stopwatch deadline)
        {
            while (deadline.Elapsed.TotalSeconds < timed) await One().ConfigureAwait(false);
        }

        // Each upload is made a different clip by one byte a few kilobytes in (a sample, in a WAV; the encoder reads only
        // the first context of a long clip), so that the encoder encodes every one instead of answering from its cache.
        async Task Upload(byte[] audio, string name, int index)
        {
            byte[] unique = [.. audio];
            unique[Math.Min(unique.Length - 1, 4096 + 64 * index)] ^= 0x10;
            try
            {
                var clock = Stopwatch.StartNew();
                if (uploadChunk > 0)
                    await SystemClient.EmbedStream(encoder, unique, name, uploadChunk, auth, ct).ConfigureAwait(false);
                else
                    await encoder.EmbedAsync(new EmbedRequest { Audio = new AudioBytes { Data = ByteString.CopyFrom(unique), Filename = name } }, auth,
                        cancellationToken: ct).ConfigureAwait(false);
                results.Add((new SystemClient.TimedStream(clock.Elapsed.TotalMilliseconds, [], 0, clock.Elapsed.TotalSeconds), null));
            }
            catch (RpcException e) when (!ct.IsCancellationRequested)
            {
                results.Add((null, e.StatusCode.ToString()));
            }
        }

        async Task One()
        {
            try
            {
                results.Add((await SystemClient.Stream(language, ask, auth, ct).ConfigureAwait(false), null));
            }
            catch (RpcException e) when (!ct.IsCancellationRequested)
            {
                results.Add((null, e.StatusCode.ToString()));
                // A refusal with a pushback (the key's rate or stream limit) is waited out, as a client should, rather
                // than retried at once: a tight loop of refusals would measure the refusing, not the serving.
                if (e.Trailers.GetValue("grpc-retry-pushback-ms") is { } pushback && int.TryParse(pushback, NumberStyles.None, CultureInfo.InvariantCulture, out int ms))
                    await Task.Delay(Math.Min(ms, 10_000), ct).ConfigureAwait(false);
            }
        }
    }

    // A phase with no successful request has NaN percentiles; JSON has no NaN, so they are written as "NaN".
    private static readonly JsonSerializerOptions JsonOptions = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    private static async Task<Phase> Measure(string name, int streams, List<(string Name, int Pid)> processes, Func<Stopwatch, Action, Task> run,
        ConcurrentBag<(SystemClient.TimedStream? Stream, string? Error)> results, CancellationToken ct)
    {
        results.Clear();
        var start = processes.Select(p => SystemClient.ResidentBytes(p.Pid)).ToList();
        var peak = start.ToArray();
        List<long?>? marked = null;
        using var sampling = new CancellationTokenSource();
        Task sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                for (int i = 0; i < processes.Count; i++)
                {
                    if (SystemClient.ResidentBytes(processes[i].Pid) is { } now && now > (peak[i] ?? 0)) peak[i] = now;
                }
                try
                {
                    await Task.Delay(50, sampling.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }, CancellationToken.None);
        var clock = Stopwatch.StartNew();
        await run(clock, () => marked = [.. processes.Select(p => SystemClient.ResidentBytes(p.Pid))]).ConfigureAwait(false);
        double wall = clock.Elapsed.TotalSeconds;
        await sampling.CancelAsync().ConfigureAwait(false);
        await sampler.ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
        var done = results.ToList();
        var ok = done.Where(r => r.Stream is not null).Select(r => r.Stream!).ToList();
        var errors = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var (_, error) in done.Where(r => r.Error is not null)) errors[error!] = errors.GetValueOrDefault(error!) + 1;
        long tokens = ok.Sum(s => (long)s.Tokens);
        var memory = processes.Select((p, i) => new Memory(p.Name, p.Pid, start[i], SystemClient.ResidentBytes(p.Pid), peak[i], marked?[i])).ToList();
        return new Phase(name, streams, done.Count, errors, SystemClient.Percentile([.. ok.Select(s => s.TtftMs)], 0.5),
            SystemClient.Percentile([.. ok.Select(s => s.TtftMs)], 0.99), tokens, wall, tokens / wall, memory);
    }

    /// <summary>--pids as given, else the services tools/run.sh started (their PID files), else none.</summary>
    private static List<(string Name, int Pid)> Processes(string? pidList)
    {
        if (!string.IsNullOrWhiteSpace(pidList))
        {
            return [.. pidList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(item =>
            {
                string[] parts = item.Split('=', 2);
                string pid = parts[^1];
                return int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out int value)
                    ? (parts.Length == 2 ? parts[0] : pid, value)
                    : throw new UsageException($"--pids: '{item}' is not name=pid or pid");
            })];
        }
        string folder = Path.Combine(Environment.GetEnvironmentVariable("LLARK_STATE") ?? ".llark", "pids");
        if (!Directory.Exists(folder)) return [];
        return [.. Directory.GetFiles(folder).Order(StringComparer.Ordinal)
            .Select(f => (Name: Path.GetFileName(f), Text: File.ReadAllText(f).Trim()))
            .Where(f => int.TryParse(f.Text, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            .Select(f => (f.Name, int.Parse(f.Text, CultureInfo.InvariantCulture)))];
    }

    private static void Print(List<Phase> phases, int newTokens, string embeddingId, int soakMark, bool json)
    {
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                new_tokens = newTokens,
                embedding_id = embeddingId,
                phases = phases.Select(p => new
                {
                    phase = p.Name,
                    streams = p.Streams,
                    requests = p.Requests,
                    errors = p.Errors,
                    ttft_p50_ms = p.TtftP50Ms,
                    ttft_p99_ms = p.TtftP99Ms,
                    tokens = p.Tokens,
                    seconds = p.Seconds,
                    tokens_per_second = p.TokensPerSecond,
                    memory = p.Memory.Select(m => new
                    {
                        name = m.Name, pid = m.Pid, rss_start_bytes = m.StartBytes, rss_end_bytes = m.EndBytes, rss_peak_bytes = m.PeakBytes,
                        rss_mark_bytes = m.MarkBytes,
                    }),
                }),
            }, JsonOptions));
            return;
        }
        var inv = CultureInfo.InvariantCulture;
        static string Mib(long? bytes) => bytes is { } b ? string.Create(CultureInfo.InvariantCulture, $"{b / 1048576.0:F1} MiB") : "gone";
        Console.WriteLine(string.Create(inv, $"the clip uploaded once (embedding {embeddingId[..Math.Min(12, embeddingId.Length)]}), then asked about by id, {newTokens} tokens an answer"));
        foreach (Phase p in phases)
        {
            string errors = p.Errors.Count == 0 ? "none" : string.Join(", ", p.Errors.Select(e => $"{e.Key} {e.Value}"));
            Console.WriteLine(string.Create(inv, $"{p.Name}: {p.Streams} stream(s), {p.Seconds:F1} s"));
            Console.WriteLine(string.Create(inv, $"  requests    {p.Requests}   errors: {errors}"));
            if (p.Name == "uploads")
            {
                Console.WriteLine(string.Create(inv, $"  latency     p50 {p.TtftP50Ms:F1} ms   p99 {p.TtftP99Ms:F1} ms (each Embed, whole)"));
            }
            else
            {
                Console.WriteLine(string.Create(inv, $"  TTFT        p50 {p.TtftP50Ms:F1} ms   p99 {p.TtftP99Ms:F1} ms"));
                Console.WriteLine(string.Create(inv, $"  throughput  {p.TokensPerSecond:F1} tok/s aggregate ({p.Tokens} tokens)"));
            }
            string mark = p.Name == "soak" ? $"after {soakMark}" : "after idle";
            foreach (Memory m in p.Memory)
            {
                Console.WriteLine(string.Create(inv,
                    $"  RSS {m.Name,-9} (pid {m.Pid})  start {Mib(m.StartBytes)}   peak {Mib(m.PeakBytes)}   end {Mib(m.EndBytes)}{(m.MarkBytes is null ? "" : $"   {mark} {Mib(m.MarkBytes)}")}"));
            }
        }
        if (phases.Any(p => p.Errors.ContainsKey(nameof(StatusCode.ResourceExhausted))))
            Console.WriteLine("  ResourceExhausted: refused by the gateway's limits for this key (LLark:Gateway:Limits), each waited out for its pushback");
        if (phases.All(p => p.Memory.Count == 0))
            Console.WriteLine("  (no process memory: no --pids, and no PID files under $LLARK_STATE/pids or .llark/pids)");
    }
}
