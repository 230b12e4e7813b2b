using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LLark.Cli.Commands;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Multimodal;
using LLark.Language.Engine.Serving;

namespace LLark.Bench.Commands;

/// <summary>
/// <c>llark-bench prefix</c>: time to first token with the prefix cache on and off, in one process over one LLark: a
/// cold question about a new clip, another question about the same clip, and a follow-up that resends the first turn
/// with its answer. Each round takes a new clip and runs the three requests with the cache and without it (in
/// alternating order), so each figure is the median of paired rounds on the same clip.
/// </summary>
/// <remarks>
/// Both run on one scheduler, a request without the cache being one submitted without its <see cref="PromptKey"/>:
/// with a scheduler for each, the one with the cache came out consistently slower on a busy machine even when nothing
/// was cached (docs/experiments/2026-12-07-prefix-cache.md), which paired rounds on one worker thread do not show.
/// </remarks>
internal static class BenchPrefixCommand
{
    private const string Cold = "Describe this clip.", Another = "What key is it in?", FollowUp = "And what is the tempo?";

    /// <summary>Questions sent together about one clip by <c>--concurrent</c>, as many clients asking about one upload.</summary>
    private static readonly string[] Questions =
    [
        Cold, Another, "What is the tempo?", "Which instruments play?", "What genre is it?", "What mood does it have?",
        "Write a bedtime story that fits it.", "Is there a singer?", "What is the time signature?", "Name the lead instrument.",
        "Is it fast or slow?", "Describe the rhythm.", "What chords does it use?", "Where might you hear it?", "Is it loud?", "Summarise it.",
    ];

    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "LLark checkpoint folder (default: random weights of --shape)" };
        var shape = new Option<string>("--shape") { Description = $"with no --model: Llama shape ({string.Join(", ", BenchCommand.Shapes.Keys)}) of a random LLark", DefaultValueFactory = _ => "stories110m" };
        var tokenizer = new Option<string>("--tokenizer") { Description = "with no --model: Llama-2 tokenizer.model", DefaultValueFactory = _ => "tests/fixtures/llama2-tokenizer-model/tokenizer.model" };
        var frames = new Option<int>("--audio-frames") { Description = "frames per clip (630: a full clip at 25 fps)", DefaultValueFactory = _ => 630 };
        var rounds = new Option<int>("--rounds") { Description = "paired rounds after one warm-up round, each on a new clip", DefaultValueFactory = _ => 5 };
        var tokens = new Option<int>("--new-tokens") { Description = "tokens per answer (greedy)", DefaultValueFactory = _ => 16 };
        var budget = new Option<long>("--cache-bytes") { Description = "the prefix cache's budget", DefaultValueFactory = _ => 2L << 30 };
        var block = new Option<int>("--block-tokens") { Description = "positions per cached block", DefaultValueFactory = _ => PrefixCache.DefaultBlockTokens };
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var concurrent = new Option<int>("--concurrent")
        {
            Description = $"also send this many different questions about one new clip at once (up to {Questions.Length}), with the cache and without, and compare their aggregate tokens/s; 0: skip",
            DefaultValueFactory = _ => 8,
        };
        var weights = BenchCommand.WeightsOption();
        var command = new Command("prefix", "Time to first token of a cold question and of follow-ups, with the prefix cache on and off")
        {
            model, shape, tokenizer, frames, rounds, tokens, budget, block, weights, json, concurrent,
        };
        command.SetAction(parse => CliErrors.Run(() => Run(parse.GetValue(model), parse.GetValue(shape)!, parse.GetValue(tokenizer)!,
            parse.GetValue(frames), parse.GetValue(rounds), parse.GetValue(tokens), parse.GetValue(budget), parse.GetValue(block),
            WeightFormats.Parse(parse.GetValue(weights)!), parse.GetValue(json), parse.GetValue(concurrent))));
        return command;
    }

    private sealed record Sample(string Request, bool Cached, double TtftMs, double TotalMs, int PromptTokens, int CachedTokens, int Generated);

    private sealed record Together(bool Cached, double Seconds, int Tokens, long PrefilledPositions);

    /// <summary>
    /// One turn of a conversation: its prompt, the positions the turn added after the last prompt and the answer's
    /// tokens, and those prefilled. A turn that pays only for itself prefills one more than it adds: the answer's last
    /// token, which no step fed back.
    /// </summary>
    private sealed record Turn(int Number, int PromptTokens, int NewPositions, int Prefilled, double TtftMs);

    /// <summary>The conversation's questions, each asked after the earlier ones and the answers they got.</summary>
    private static readonly string[] Conversation =
        [Cold, Another, FollowUp, "Which instruments play?", "Now write a bedtime story that fits it."];

    private static int Run(string? modelDir, string shapeName, string tokenizer, int frames, int rounds, int newTokens, long budget, int blockTokens,
        WeightFormat weights, bool json, int concurrent)
    {
        if (frames < 1 || rounds < 1 || newTokens < 1 || budget < 1 || blockTokens < 1)
            throw new UsageException("--audio-frames, --rounds, --new-tokens, --cache-bytes and --block-tokens must be >= 1");
        if (concurrent < 0 || concurrent > Questions.Length) throw new UsageException($"--concurrent must be 0 to {Questions.Length}");
        string? temporary = null;
        if (modelDir is null)
        {
            if (!BenchCommand.Shapes.TryGetValue(shapeName.ToLowerInvariant(), out LlamaConfig? config)) throw new UsageException($"unknown --shape '{shapeName}'");
            if (!File.Exists(tokenizer)) throw new FileNotFoundException($"tokenizer not found: {tokenizer} (run from the repository root or pass --tokenizer)");
            temporary = modelDir = Path.Combine(Path.GetTempPath(), "llark-bench-prefix-" + Guid.NewGuid().ToString("N"));
            BenchServeCommand.WriteRandomLLark(modelDir, config with { VocabSize = 32004, MaxPositionEmbeddings = Math.Max(config.MaxPositionEmbeddings, frames + 512) },
                tokenizer);
        }
        try
        {
            using LLarkModel llark = LLarkModel.Load(modelDir, new LlamaLoadOptions { Weights = weights });
            using var cache = new PrefixCache(budget, blockTokens);
            using var scheduler = new BatchScheduler(llark.Llama, new SchedulerOptions { MaxBatchSize = 1 }, prefixCache: cache);
            var samples = new List<Sample>();
            for (int round = 0; round <= rounds; round++)
            {
                AudioFrames clip = Clip(llark, frames, round);
                foreach (bool on in round % 2 == 0 ? new[] { true, false } : [false, true])
                {
                    (Sample first, string answer) = Ask(scheduler, llark, "cold", on, [new ChatTurn(Cold)], clip, newTokens);
                    Sample other = Ask(scheduler, llark, "another", on, [new ChatTurn(Another)], clip, newTokens).Sample;
                    Sample next = Ask(scheduler, llark, "follow-up", on, [new ChatTurn(Cold, answer), new ChatTurn(FollowUp)], clip, newTokens).Sample;
                    // Round 0 warms both paths (allocator, scratch buffers, the cache's system-line blocks) and is not reported.
                    if (round > 0) samples.AddRange([first, other, next]);
                }
            }
            var together = new List<Together>();
            if (concurrent > 0)
            {
                using var batch = new BatchScheduler(llark.Llama, new SchedulerOptions { MaxBatchSize = concurrent }, prefixCache: cache);
                for (int round = 0; round <= rounds; round++)
                {
                    foreach (bool on in round % 2 == 0 ? new[] { true, false } : [false, true])
                    {
                        // A new clip for each mode, so the cache-on run starts from nothing cached about it.
                        Together run = AskTogether(batch, llark, on, Clip(llark, frames, 1000 + 2 * round + (on ? 0 : 1)), concurrent, newTokens);
                        if (round > 0) together.Add(run);
                    }
                }
            }
            // A five-turn conversation about one new clip, with the cache: what each turn prefills against what it adds.
            var conversation = new List<Turn>();
            {
                AudioFrames clip = Clip(llark, frames, 5000);
                var turns = new List<ChatTurn>();
                int previous = 0;
                for (int t = 0; t < Conversation.Length; t++)
                {
                    turns.Add(new ChatTurn(Conversation[t]));
                    (Sample sample, string answer) = Ask(scheduler, llark, "turn", true, turns, clip, newTokens);
                    conversation.Add(new Turn(t + 1, sample.PromptTokens, sample.PromptTokens - previous, sample.PromptTokens - sample.CachedTokens, sample.TtftMs));
                    previous = sample.PromptTokens + sample.Generated;
                    turns[^1] = new ChatTurn(Conversation[t], answer);
                }
            }
            Report(samples, together, conversation, concurrent, llark, frames, rounds, newTokens, cache, json, modelDir == temporary ? $"random {shapeName}" : modelDir);
        }
        finally
        {
            if (temporary is not null) Directory.Delete(temporary, recursive: true);
        }
        return ExitCodes.Ok;
    }

    /// <summary>A new clip each round, with an id of its own, as the encoder would give a new clip.</summary>
    private static AudioFrames Clip(LLarkModel llark, int frames, int round)
    {
        var random = new Random(1000 + round);
        float[] data = new float[frames * llark.AudioWidth];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
        return new AudioFrames(data, frames, llark.AudioWidth, llark.AudioFps, null, $"bench-clip-{round}-{Guid.NewGuid():N}");
    }

    private static (Sample Sample, string Answer) Ask(BatchScheduler scheduler, LLarkModel llark, string name, bool on, IReadOnlyList<ChatTurn> turns,
        AudioFrames clip, int newTokens)
    {
        LLarkPromptInput prompt = Build(llark, turns, clip);
        var options = new GenerationOptions { MaxNewTokens = newTokens, StopOnEos = false, StopStrings = [LLarkPrompt.StopString] };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        GenerationResult? result = null;
        foreach (GenerationUpdate update in scheduler.Submit(prompt.Embeddings, prompt.Ids, llark.Tokenizer.CreateDetokenizer(false), options, on ? prompt.Key : null)
            .ToBlockingEnumerable()) result = update.Result ?? result;
        double total = clock.Elapsed.TotalMilliseconds;
        return (new Sample(name, on, result!.TimeToFirstToken.TotalMilliseconds, total, result.PromptTokens, result.CachedPromptTokens, result.TokenIds.Count),
            result.Text.Trim());
    }

    /// <summary>
    /// The prompt as the language service builds it, with one libtorch thread (its <c>TorchThreads</c> default): with
    /// more, the libtorch threads of the projector spin on after it, taking the cores from the prefill that follows
    /// (a hit's first token came about twice as late).
    /// </summary>
    private static LLarkPromptInput Build(LLarkModel llark, IReadOnlyList<ChatTurn> turns, AudioFrames clip)
    {
        using (TorchThreadScope.Use(1)) return llark.BuildPrompt(turns, clip);
    }

    /// <summary>
    /// <paramref name="count"/> different questions about one clip submitted at once; each answers exactly
    /// <paramref name="newTokens"/> tokens (no stop), so the two modes generate the same number.
    /// </summary>
    private static Together AskTogether(BatchScheduler scheduler, LLarkModel llark, bool on, AudioFrames clip, int count, int newTokens)
    {
        var options = new GenerationOptions { MaxNewTokens = newTokens, StopOnEos = false };
        var prompts = Questions.Take(count).Select(q => Build(llark, [new ChatTurn(q)], clip)).ToList();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Task<GenerationResult>[] answers = [.. prompts.Select(p => Task.Run(async () =>
        {
            GenerationResult? result = null;
            await foreach (GenerationUpdate update in scheduler.Submit(p.Embeddings, p.Ids, llark.Tokenizer.CreateDetokenizer(false), options, on ? p.Key : null))
                result = update.Result ?? result;
            return result!;
        }))];
        GenerationResult[] results = Task.WhenAll(answers).GetAwaiter().GetResult();
        double seconds = clock.Elapsed.TotalSeconds;
        return new Together(on, seconds, results.Sum(r => r.TokenIds.Count), results.Sum(r => (long)r.PromptTokens - r.CachedPromptTokens));
    }

    private static void Report(List<Sample> samples, List<Together> together, List<Turn> conversation, int concurrent, LLarkModel llark, int frames, int rounds, int newTokens,
        PrefixCache cache, bool json, string model)
    {
        string[] requests = ["cold", "another", "follow-up"];
        double Median(string request, bool on, Func<Sample, double> f) =>
            SystemClient.Median([.. samples.Where(s => s.Request == request && s.Cached == on).Select(f)]);
        var rows = requests.Select(r => new
        {
            request = r,
            prompt_tokens = (int)Median(r, true, s => s.PromptTokens),
            cached_tokens = (int)Median(r, true, s => s.CachedTokens),
            ttft_ms_off = Median(r, false, s => s.TtftMs),
            ttft_ms_on = Median(r, true, s => s.TtftMs),
            total_ms_off = Median(r, false, s => s.TotalMs),
            total_ms_on = Median(r, true, s => s.TotalMs),
        }).ToList();
        double TogetherMedian(bool on, Func<Together, double> f) => together.Count == 0 ? 0 : SystemClient.Median([.. together.Where(t => t.Cached == on).Select(f)]);
        var concurrentRow = together.Count == 0 ? null : new
        {
            questions = concurrent,
            tokens_per_s_off = TogetherMedian(false, t => t.Tokens / t.Seconds),
            tokens_per_s_on = TogetherMedian(true, t => t.Tokens / t.Seconds),
            seconds_off = TogetherMedian(false, t => t.Seconds),
            seconds_on = TogetherMedian(true, t => t.Seconds),
            prefilled_off = (long)TogetherMedian(false, t => t.PrefilledPositions),
            prefilled_on = (long)TogetherMedian(true, t => t.PrefilledPositions),
        };
        long parameters = llark.Llama.Config.ParameterCount;
        string cpu = CpuName();
        string weights = llark.Llama.WeightFormat.Name();
        long peak = BenchCommand.PeakResidentBytes();
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                model, parameters, weights, peak_rss_bytes = peak, cpu, cores = Environment.ProcessorCount, audio_frames = frames, rounds, new_tokens = newTokens,
                block_tokens = cache.BlockTokens, cache_bytes = cache.BytesHeld, rows, concurrent = concurrentRow,
                conversation = conversation.Select(t => new
                {
                    turn = t.Number, prompt_tokens = t.PromptTokens, new_positions = t.NewPositions, prefilled = t.Prefilled, ttft_ms = t.TtftMs,
                }),
            }));
            return;
        }
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"cpu          {cpu}, {Environment.ProcessorCount} logical cores"));
        Console.WriteLine(string.Create(inv, $"model        {model} ({parameters / 1e6:F1}M parameters, {llark.Llama.DType}, {weights} weights), {frames} audio frames, {newTokens} new tokens"));
        Console.WriteLine(string.Create(inv, $"cache        blocks of {cache.BlockTokens}, {cache.BytesHeld / 1048576.0:F1} MiB held at the end; medians of {rounds} paired rounds"));
        Console.WriteLine(string.Create(inv, $"memory       {peak / 1048576.0:F0} MiB peak resident"));
        Console.WriteLine();
        Console.WriteLine("request     prompt  cached   TTFT off    TTFT on   speed-up   total off   total on");
        foreach (var r in rows)
        {
            Console.WriteLine(string.Create(inv,
                $"{r.request,-10} {r.prompt_tokens,7} {r.cached_tokens,7} {r.ttft_ms_off,8:F1} ms {r.ttft_ms_on,7:F1} ms {r.ttft_ms_off / r.ttft_ms_on,9:F2}x {r.total_ms_off,8:F1} ms {r.total_ms_on,7:F1} ms"));
        }
        Console.WriteLine();
        Console.WriteLine("a conversation about one new clip, with the cache (new: positions after the last prompt and the tokens of its answer):");
        foreach (Turn t in conversation)
        {
            Console.WriteLine(string.Create(inv,
                $"  turn {t.Number}  prompt {t.PromptTokens,5}  new {t.NewPositions,5}  prefilled {t.Prefilled,5}  TTFT {t.TtftMs,8:F1} ms"));
        }
        if (concurrentRow is { } c)
        {
            Console.WriteLine();
            Console.WriteLine(string.Create(inv, $"{c.questions} questions about one new clip at once (batch of {c.questions}), {newTokens} tokens each:"));
            Console.WriteLine(string.Create(inv,
                $"  cache off  {c.tokens_per_s_off,8:F1} tok/s aggregate  {c.seconds_off * 1000,8:F1} ms  {c.prefilled_off,6} positions prefilled"));
            Console.WriteLine(string.Create(inv,
                $"  cache on   {c.tokens_per_s_on,8:F1} tok/s aggregate  {c.seconds_on * 1000,8:F1} ms  {c.prefilled_on,6} positions prefilled  ({c.tokens_per_s_on / c.tokens_per_s_off:F2}x)"));
        }
    }

    /// <summary>The CPU's model name as /proc/cpuinfo gives it; "unknown" without one.</summary>
    internal static string CpuName()
    {
        try
        {
            string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? "unknown" : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
