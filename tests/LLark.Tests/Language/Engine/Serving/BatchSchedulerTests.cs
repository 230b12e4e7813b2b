using LLark.Common;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Serving;
using LLark.Language.Engine.Tokenization;
using LLark.Tests.Language.Engine.Model;
using LLark.Tests.TestSupport;
using static TorchSharp.torch;

namespace LLark.Tests.Language.Engine.Serving;

public sealed class BatchSchedulerTests : IDisposable
{
    private readonly LlamaForCausalLM model = LlamaFidelityTests.Load("llama-tiny/llama-gqa-bf16");
    private readonly LlamaTextTokenizer tokenizer =
        LlamaTextTokenizer.Load(RepoPaths.Fixture("llama-tiny", "tokenizer", "tokenizer.model"), addedTokens: []);
    private readonly LlamaReference golden = new("gqa");

    public void Dispose() => model.Dispose();

    private Tensor Embed(int[] ids)
    {
        using var scope = NewDisposeScope();
        return model.Embed(tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0)).clone().MoveToOuterDisposeScope();
    }

    private GenerationFeed Submit(BatchScheduler scheduler, int[] ids, int tokens, CancellationToken ct = default) =>
        scheduler.Submit(Embed(ids), ids, tokenizer.CreateDetokenizer(false), new GenerationOptions { MaxNewTokens = tokens, StopOnEos = false }, ct);

    private static async Task<List<GenerationUpdate>> Collect(IAsyncEnumerable<GenerationUpdate> updates)
    {
        var list = new List<GenerationUpdate>();
        await foreach (GenerationUpdate u in updates) list.Add(u);
        return list;
    }

    [Fact]
    public async Task ConcurrentRequestsEachGetTheirReferenceContinuation()
    {
        using var scheduler = new BatchScheduler(model, new SchedulerOptions { MaxBatchSize = 4 });
        string[] names = ["short", "story", "no_bos", "digits_unicode", "license_long", "bos_only"];
        var runs = names.Select(n => golden.Prompt(n)).Select(p => (
            Expected: LlamaReference.Ints(p.GetProperty("greedy_32")),
            Gaps: LlamaReference.Floats(p.GetProperty("greedy_32_top1_minus_top2")),
            Task: Collect(Submit(scheduler, LlamaReference.Ints(p.GetProperty("ids")), 32)))).ToList();
        foreach (var run in runs)
        {
            List<GenerationUpdate> updates = await run.Task;
            GenerationResult result = updates[^1].Result!;
            int sure = Array.FindIndex(run.Gaps, g => g < 1e-3f) is var k && k >= 0 ? k + 1 : 32;
            Assert.Equal(run.Expected[..sure], result.TokenIds.Take(sure));
            Assert.Equal(FinishReason.Length, result.FinishReason);
            Assert.Equal(result.Text, string.Concat(updates.Select(u => u.TextDelta)));
        }
        Assert.Equal(0, scheduler.ActiveSequences);
    }

    [Fact]
    public async Task ConcurrentGreedyStreamsEqualTheirSingleSequenceGenerationsTokenForToken()
    {
        // Seven prompts of different lengths and answer lengths through four slots: sequences join the running batch
        // at different steps (and positions) and leave it at different steps, and the batch is compacted as they do.
        Assert.True(model.DecodesInManagedCode);
        string[] names = ["short", "story", "no_bos", "digits_unicode", "license_long", "bos_only", "raw_ids_edges"];
        int[] lengths = [40, 25, 60, 33, 48, 70, 20];
        var alone = new TextGenerator(model);
        var expected = names.Select((n, i) => alone.Generate(LlamaReference.Ints(golden.Prompt(n).GetProperty("ids")), NullTextDecoder.Instance,
            new GenerationOptions { MaxNewTokens = lengths[i], StopOnEos = false }).Last().Result!.TokenIds.ToArray()).ToArray();

        using var scheduler = new BatchScheduler(model, new SchedulerOptions { MaxBatchSize = 4 });
        // The decoder runs on the worker for every token, so it sees how many sequences shared that step.
        int widest = 0;
        var decoder = new StepHook(_ => widest = Math.Max(widest, scheduler.ActiveSequences));
        var tasks = names.Select((n, i) =>
        {
            int[] ids = LlamaReference.Ints(golden.Prompt(n).GetProperty("ids"));
            return Collect(scheduler.Submit(Embed(ids), ids, decoder, new GenerationOptions { MaxNewTokens = lengths[i], StopOnEos = false }));
        }).ToArray();
        for (int i = 0; i < names.Length; i++)
        {
            GenerationResult result = (await tasks[i])[^1].Result!;
            Assert.Equal(lengths[i], result.TokenIds.Count);
            Assert.True(expected[i].SequenceEqual(result.TokenIds), $"{names[i]}: batched [{string.Join(' ', result.TokenIds)}], alone [{string.Join(' ', expected[i])}]");
        }
        Assert.True(widest > 1, "no two sequences ever shared a decode step");
    }

    [Fact]
    public async Task ANewRequestJoinsTheRunningBatchAndFinishesFirst()
    {
        using var scheduler = new BatchScheduler(model, new SchedulerOptions { MaxBatchSize = 2 }, new StepPause(TimeSpan.FromMilliseconds(2)));
        int[] ids = LlamaReference.Ints(golden.Prompt("story").GetProperty("ids"));
        var longOne = Submit(scheduler, ids, 200).GetAsyncEnumerator();
        for (int i = 0; i < 5; i++) Assert.True(await longOne.MoveNextAsync());
        List<GenerationUpdate> shortOne = await Collect(Submit(scheduler, ids, 5));
        Assert.Equal(5, shortOne[^1].Result!.TokenIds.Count);
        int more = 0;
        GenerationResult? longResult = null;
        while (await longOne.MoveNextAsync())
        {
            more++;
            longResult = longOne.Current.Result ?? longResult;
        }
        Assert.Equal(200, longResult!.TokenIds.Count);
        Assert.True(more > 100, $"the long request had only {more} tokens left when the short one ended");
        await longOne.DisposeAsync();
    }

    [Fact]
    public async Task CancellingARunningRequestFreesItsSlotForTheNext()
    {
        using var scheduler = new BatchScheduler(model, new SchedulerOptions { MaxBatchSize = 1 });
        int[] ids = LlamaReference.Ints(golden.Prompt("short").GetProperty("ids"));
        using var cts = new CancellationTokenSource();
        using var secondQueued = new ManualResetEventSlim();
        int queueDepthWhileRunning = -1;
        // The worker calls the decoder on every token: it waits at token 3 until the second request is queued, notes
        // the queue, and cancels at token 5, so the timing does not depend on how fast the model is.
        var decoder = new StepHook(tokenIndex =>
        {
            if (tokenIndex == 3)
            {
                secondQueued.Wait(TimeSpan.FromSeconds(30));
                queueDepthWhileRunning = scheduler.QueueDepth;
            }
            if (tokenIndex == 5) cts.Cancel();
        });
        var first = scheduler.Submit(Embed(ids), ids, decoder, new GenerationOptions { MaxNewTokens = 250, StopOnEos = false }, cts.Token)
            .GetAsyncEnumerator();
        Assert.True(await first.MoveNextAsync());
        Task<List<GenerationUpdate>> second = Collect(Submit(scheduler, ids, 3));
        secondQueued.Set();
        List<GenerationUpdate> done = await second.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(3, done[^1].Result!.TokenIds.Count);
        Assert.Equal(1, queueDepthWhileRunning);
        // The first stream ends by cancellation: its reader sees it, and it stopped within one step of the cancel.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => { while (await first.MoveNextAsync()) { } });
        Assert.InRange(decoder.Tokens, 5, 6);
    }

    private sealed class StepHook(Action<int> onToken) : ITokenTextDecoder
    {
        public int Tokens { get; private set; }

        public string Push(int tokenId)
        {
            Tokens++;
            onToken(Tokens);
            return "";
        }

        public string Flush() => "";
    }

    [Fact]
    public async Task AFullQueueIsRefusedWithARetryHintAndServingGoesOn()
    {
        using var scheduler = new BatchScheduler(model, new SchedulerOptions { MaxBatchSize = 1, MaxQueuedRequests = 2 },
            new StepPause(TimeSpan.FromMilliseconds(5)));
        int[] ids = LlamaReference.Ints(golden.Prompt("short").GetProperty("ids"));
        using var cts = new CancellationTokenSource();
        var running = Submit(scheduler, ids, 250, cts.Token).GetAsyncEnumerator();
        Assert.True(await running.MoveNextAsync());
        var queued = new[] { Collect(Submit(scheduler, ids, 2)), Collect(Submit(scheduler, ids, 2)) };
        var e = Assert.Throws<QueueFullException>(() => Submit(scheduler, ids, 2));
        Assert.True(e.RetryAfter > TimeSpan.Zero);
        cts.Cancel();
        foreach (var q in queued) Assert.Equal(2, (await q.WaitAsync(TimeSpan.FromSeconds(30)))[^1].Result!.TokenIds.Count);
        Assert.Equal(2, (await Collect(Submit(scheduler, ids, 2)))[^1].Result!.TokenIds.Count);
    }

    [Fact]
    public void BadRequestsAreRefusedBeforeTheyQueue()
    {
        using var scheduler = new BatchScheduler(model, new SchedulerOptions { MaxBatchSize = 1, ContextLength = 64 });
        int[] tooLong = Enumerable.Repeat(5, 64).ToArray();
        Assert.Throws<ContextLengthException>(() => Submit(scheduler, tooLong, 4));
        int[] ids = [1, 5];
        var bad = new GenerationOptions { Sampling = new SamplingOptions { TopP = 2 } };
        Assert.Equal("top_p", Assert.Throws<InvalidRequestException>(() =>
            scheduler.Submit(Embed(ids), ids, tokenizer.CreateDetokenizer(false), bad)).Field);
        Assert.Equal(0, scheduler.QueueDepth);
    }

    [Fact]
    public async Task ASequenceEndsWithLengthWhenItsContextIsFull()
    {
        using var scheduler = new BatchScheduler(model, new SchedulerOptions { MaxBatchSize = 2, ContextLength = 40 });
        int[] ids = LlamaReference.Ints(golden.Prompt("story").GetProperty("ids"));
        GenerationResult result = (await Collect(Submit(scheduler, ids, 100)))[^1].Result!;
        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Equal(40 - ids.Length + 1, result.TokenIds.Count);
    }
}
