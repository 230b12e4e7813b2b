using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Multimodal;
using LLark.Language.Engine.Serving;
using LLark.Tests.TestSupport;
using static TorchSharp.torch;

namespace LLark.Tests.Language.Engine.Serving;

public sealed class PrefixCacheTests : IDisposable
{
    private const int Block = 8;
    private readonly LLarkModel model = LLarkModel.Load(TinyLLark.Directory);

    public void Dispose() => model.Dispose();

    private static AudioFrames Clip(int seed, int frames = 60, string? contentId = null)
    {
        var random = new Random(seed);
        float[] data = [.. Enumerable.Range(0, frames * TinyLLark.AudioWidth).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        return new AudioFrames(data, frames, TinyLLark.AudioWidth, TinyLLark.Fps, null, contentId);
    }

    private static GenerationOptions Greedy(int tokens = 12) => new() { MaxNewTokens = tokens, StopOnEos = false, LogProbs = true };

    private static async Task<GenerationResult> Ask(BatchScheduler scheduler, LLarkModel llark, IReadOnlyList<ChatTurn> turns, AudioFrames audio,
        GenerationOptions? options = null)
    {
        LLarkPromptInput prompt = llark.BuildPrompt(turns, audio);
        GenerationResult? result = null;
        await foreach (GenerationUpdate u in scheduler.Submit(prompt.Embeddings, prompt.Ids, llark.Tokenizer.CreateDetokenizer(false),
            options ?? Greedy(), prompt.Key)) result = u.Result ?? result;
        return result!;
    }

    private int AudioStart(LLarkPromptInput prompt) =>
        Array.IndexOf(prompt.Ids, model.Tokenizer.TryGetAddedTokenId(LLarkPrompt.AudioPatch, out int patch) ? patch : -1);

    private static void SameAnswer(GenerationResult expected, GenerationResult actual)
    {
        Assert.Equal(expected.TokenIds, actual.TokenIds);
        for (int i = 0; i < expected.LogProbs!.Count; i++) Assert.Equal(expected.LogProbs[i], actual.LogProbs![i], 1e-5f);
    }

    /// <summary>Through the managed prefill (a float32 CPU model) and through libtorch's (every other dtype and device).</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void LogitsAfterARestoredPrefixMatchAFullPrefillWithin1e5(bool managed)
    {
        Tensor Forward(Tensor embeds, KvCache kv) =>
            managed ? model.Llama.Forward(embeds, kv, lastOnly: false) : model.Llama.ForwardLibTorch(embeds, kv, lastOnly: false);
        using var cache = new PrefixCache(64L << 20, Block);
        using LLarkPromptInput first = model.BuildPrompt([new ChatTurn("Describe this clip.")], Clip(1));
        using LLarkPromptInput second = model.BuildPrompt([new ChatTurn("What key is it in?")], Clip(1));
        int t = (int)second.Embeddings.shape[1];
        using KvCache full = model.Llama.NewCache(t + 1), warm = model.Llama.NewCache(first.Ids.Length + 1), reused = model.Llama.NewCache(t + 1);
        using Tensor expected = Forward(second.Embeddings, full);

        using (Forward(first.Embeddings, warm)) cache.Insert(first.Key, warm);
        int restored = cache.Restore(second.Key, t - 1, reused);
        // Every position the two prompts share, within the first prompt's whole blocks: the last of them only in part.
        int shared = 0;
        while (second.Key.Positions[shared] == first.Key.Positions[shared]) shared++;
        Assert.True(shared > AudioStart(second) + 60 && shared % Block != 0, $"the prompts share {shared} positions");
        Assert.Equal(Math.Min(shared, first.Ids.Length / Block * Block), restored);
        Assert.Equal(restored, reused.Length);
        using Tensor rest = Forward(second.Embeddings.narrow(1, restored, t - restored), reused);
        float worst = expected.narrow(1, restored, t - restored).sub(rest).abs().max().item<float>();
        Assert.True(worst <= 1e-5f, $"largest logit difference {worst}");
        Assert.Equal((1, 0, (long)restored), (cache.Hits, cache.Misses, cache.SavedPositions));
    }

    [Fact]
    public async Task AFollowUpQuestionHitsAndAnswersTokenForTokenAsWithoutTheCache()
    {
        AudioFrames clip = Clip(2, contentId: "clip-2");
        string[] questions = ["Describe this clip.", "What key is it in?", "Describe this clip."];
        var expected = new List<GenerationResult>();
        using (var plain = new BatchScheduler(model.Llama, new SchedulerOptions { MaxBatchSize = 2 }))
        {
            foreach (string q in questions) expected.Add(await Ask(plain, model, [new ChatTurn(q)], clip));
        }

        using var cache = new PrefixCache(64L << 20, Block);
        using var scheduler = new BatchScheduler(model.Llama, new SchedulerOptions { MaxBatchSize = 2 }, prefixCache: cache);
        for (int i = 0; i < questions.Length; i++)
        {
            GenerationResult result = await Ask(scheduler, model, [new ChatTurn(questions[i])], clip);
            SameAnswer(expected[i], result);
            using LLarkPromptInput prompt = model.BuildPrompt([new ChatTurn(questions[i])], clip);
            if (i == 0) Assert.Equal(0, result.CachedPromptTokens);
            else if (i == 1) Assert.True(result.CachedPromptTokens > AudioStart(prompt) + clip.Frames - Block, $"{result.CachedPromptTokens}");
            else Assert.Equal(result.PromptTokens - 1, result.CachedPromptTokens);
        }
        // The repeated question finds its whole prompt cached, the partial block at its end too; it still prefills its last position.
        Assert.Equal((2, 1), (cache.Hits, cache.Misses));
    }

    [Fact]
    public async Task AFiveTurnConversationPrefillsOnlyEachNewTurn()
    {
        AudioFrames clip = Clip(3, frames: 40);
        string[] questions = ["Describe this clip.", "What key is it in?", "And the tempo?", "Is there a singer?", "Now write a bedtime story that fits it."];
        using var cache = new PrefixCache(64L << 20, Block);
        using var cached = new BatchScheduler(model.Llama, new SchedulerOptions { MaxBatchSize = 2 }, prefixCache: cache);
        using var plain = new BatchScheduler(model.Llama, new SchedulerOptions { MaxBatchSize = 2 });
        var turns = new List<ChatTurn>();
        PromptKey? before = null;
        foreach (string question in questions)
        {
            turns.Add(new ChatTurn(question));
            GenerationResult without = await Ask(plain, model, turns, clip, Greedy(6));
            GenerationResult with = await Ask(cached, model, turns, clip, Greedy(6));
            SameAnswer(without, with);
            using LLarkPromptInput prompt = model.BuildPrompt(turns, clip);
            if (before is not null)
            {
                // Every position the earlier prompt and its answer computed (all but the answer's last token, never fed
                // back) is reused as far as the resent turns re-tokenize to them, partial blocks included; the new turn
                // is what is prefilled.
                int shared = 0;
                while (shared < before.Positions.Count - 1 && prompt.Key.Positions[shared] == before.Positions[shared]) shared++;
                Assert.Equal(Math.Min(shared, with.PromptTokens - 1), with.CachedPromptTokens);
            }
            before = prompt.Key.Then(with.TokenIds);
            turns[^1] = new ChatTurn(question, with.Text.Trim());
        }
    }

    [Fact]
    public async Task AnotherClipReusesOnlyTheTextBeforeTheAudio()
    {
        using var cache = new PrefixCache(64L << 20, Block);
        using var scheduler = new BatchScheduler(model.Llama, new SchedulerOptions(), prefixCache: cache);
        using var plain = new BatchScheduler(model.Llama, new SchedulerOptions());
        ChatTurn[] question = [new ChatTurn("Describe this clip.")];
        await Ask(scheduler, model, question, Clip(4));
        foreach (AudioFrames other in new[] { Clip(5), Clip(4, contentId: "another-id"), Clip(4, frames: 59) })
        {
            using LLarkPromptInput prompt = model.BuildPrompt(question, other);
            GenerationResult result = await Ask(scheduler, model, question, other);
            Assert.InRange(result.CachedPromptTokens, 1, AudioStart(prompt));
            SameAnswer(await Ask(plain, model, question, other), result);
        }
    }

    [Fact]
    public void FramesWithoutAnIdAreKnownByTheirBytes()
    {
        Assert.Equal(Clip(6).Digest(), Clip(6).Digest());
        Assert.NotEqual(Clip(6).Digest(), Clip(7).Digest());
        Assert.Equal(Clip(6, contentId: "x").Digest(), Clip(7, contentId: "x").Digest());
        Assert.NotEqual(Clip(6, contentId: "x").Digest(), Clip(6, contentId: "y").Digest());
    }

    [Fact]
    public async Task AnotherModelOrTemplateNeverHits()
    {
        string copy = Path.Combine(Path.GetTempPath(), "llark-prefix-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(copy);
        try
        {
            foreach (string file in Directory.GetFiles(TinyLLark.Directory)) File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
            using LLarkModel other = LLarkModel.Load(copy);
            Assert.NotEqual(model.Identity, other.Identity);
            using var cache = new PrefixCache(64L << 20, Block);
            using var first = new BatchScheduler(model.Llama, new SchedulerOptions(), prefixCache: cache);
            using var second = new BatchScheduler(other.Llama, new SchedulerOptions(), prefixCache: cache);
            ChatTurn[] question = [new ChatTurn("Describe this clip.")];
            await Ask(first, model, question, Clip(8));
            Assert.Equal(0, (await Ask(second, other, question, Clip(8))).CachedPromptTokens);

            using LLarkPromptInput prompt = model.BuildPrompt(question, Clip(8));
            var otherTemplate = new PromptKey(PromptKey.ScopeOf(model.Identity, "another-template"), prompt.Key.Positions);
            using KvCache slot = model.Llama.NewCache(prompt.Ids.Length + 1);
            Assert.Equal(0, cache.Restore(otherTemplate, prompt.Ids.Length - 1, slot));
            Assert.True(cache.Restore(prompt.Key, prompt.Ids.Length - 1, slot) > AudioStart(prompt));
            Assert.Equal((1, 3), (cache.Hits, cache.Misses));
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }

    [Fact]
    public async Task ASmallBudgetEvictsTheLeastRecentlyUsedAndStaysWithinIt()
    {
        long blockBytes = model.Llama.Config.NumHiddenLayers * 2L * model.Llama.Config.KeyValueHeads * Block * model.Llama.Config.HeadDim * 4;
        using var cache = new PrefixCache(40 * blockBytes, Block);
        using var scheduler = new BatchScheduler(model.Llama, new SchedulerOptions(), prefixCache: cache);
        ChatTurn[] question = [new ChatTurn("Describe this clip.")];
        // Each prompt (about 190 positions) with its answer takes some 25 blocks, 11 of them the text before the audio,
        // which every clip shares: the third clip no longer fits beside the first two.
        for (int seed = 10; seed < 14; seed++)
        {
            await Ask(scheduler, model, question, Clip(seed, frames: 80));
            Assert.InRange(cache.BytesHeld, blockBytes, cache.BudgetBytes);
            // Memory freed by eviction is reused, never allocated beyond the budget.
            Assert.InRange(cache.BytesReserved, cache.BytesHeld, cache.BudgetBytes);
        }
        Assert.True(cache.Evictions > 0);
        using LLarkPromptInput latest = model.BuildPrompt(question, Clip(13, frames: 80)), oldest = model.BuildPrompt(question, Clip(10, frames: 80));
        Assert.True((await Ask(scheduler, model, question, Clip(13, frames: 80))).CachedPromptTokens > AudioStart(latest) + 80);
        Assert.True((await Ask(scheduler, model, question, Clip(10, frames: 80))).CachedPromptTokens <= AudioStart(oldest));
    }

    [Fact]
    public async Task TheStateASlotStillHoldsIsReusedInPlaceWhereTheCacheKeptNothing()
    {
        AudioFrames clip = Clip(20, contentId: "clip-20");
        ChatTurn[] first = [new ChatTurn("Describe this clip.")], second = [new ChatTurn("What key is it in?")];
        using var plain = new BatchScheduler(model.Llama, new SchedulerOptions { MaxBatchSize = 1 });
        GenerationResult expected = await Ask(plain, model, second, clip);

        // A budget smaller than one block: the cache never keeps anything, so what is reused can only be the slot's.
        using var cache = new PrefixCache(1, Block);
        using var scheduler = new BatchScheduler(model.Llama, new SchedulerOptions { MaxBatchSize = 1 }, prefixCache: cache);
        await Ask(scheduler, model, first, clip);
        Assert.Equal(0, cache.BytesHeld);
        GenerationResult result = await Ask(scheduler, model, second, clip);
        using LLarkPromptInput a = model.BuildPrompt(first, clip), b = model.BuildPrompt(second, clip);
        int shared = 0;
        while (a.Key.Positions[shared] == b.Key.Positions[shared]) shared++;
        Assert.Equal(shared, result.CachedPromptTokens);
        SameAnswer(expected, result);
        // Another clip shares only the text before the audio with what the slot holds.
        GenerationResult other = await Ask(scheduler, model, second, Clip(21, contentId: "clip-21"));
        Assert.Equal(AudioStart(b), other.CachedPromptTokens);
    }

    [Fact]
    public async Task SlotsFreedOutOfOrderAndRefilledAnswerAsWithoutTheCache()
    {
        // Sequences of different lengths in one batch end at different steps, so the scheduler moves the running ones
        // into the freed slots; the next questions about the clip reuse whatever those slots still hold.
        AudioFrames clip = Clip(30, contentId: "clip-30");
        string[] questions = ["Describe this clip.", "What key is it in?", "And the tempo?", "Is there a singer?"];
        async Task<GenerationResult[]> Wave(BatchScheduler scheduler, int wave) => await Task.WhenAll(questions.Select((q, i) =>
            Ask(scheduler, model, [new ChatTurn(q)], clip, Greedy(3 + 4 * ((i + wave) % questions.Length)))));

        using var plain = new BatchScheduler(model.Llama, new SchedulerOptions { MaxBatchSize = 4 });
        using var cache = new PrefixCache(1, Block);
        using var scheduler = new BatchScheduler(model.Llama, new SchedulerOptions { MaxBatchSize = 4 }, prefixCache: cache);
        for (int wave = 0; wave < 3; wave++)
        {
            GenerationResult[] expected = await Wave(plain, wave), actual = await Wave(scheduler, wave);
            for (int i = 0; i < questions.Length; i++) SameAnswer(expected[i], actual[i]);
            if (wave > 0) Assert.Contains(actual, r => r.CachedPromptTokens > 0);
        }
    }

    [Fact]
    public async Task ASlotLeftByAMovedSequenceIsKnownByThatSequencesState()
    {
        AudioFrames clip = Clip(31, contentId: "clip-31");
        ChatTurn[] a = [new ChatTurn("Describe this clip.")], b = [new ChatTurn("What key is it in?")];
        using var plain = new BatchScheduler(model.Llama, new SchedulerOptions { MaxBatchSize = 2 });
        GenerationResult expectedA = await Ask(plain, model, a, clip), expectedB = await Ask(plain, model, b, clip);

        using var cache = new PrefixCache(1, Block);
        using var scheduler = new BatchScheduler(model.Llama, new SchedulerOptions { MaxBatchSize = 2 }, prefixCache: cache);
        // A (slot 0) ends first, B moves from slot 1 into slot 0: slot 1 is left holding B's state, not A's.
        await Together(scheduler, (a, Greedy(2)), (b, Greedy(12)));
        // B again goes to slot 0 (B's whole state), A to slot 1: reusing it as A's would answer from B's question.
        GenerationResult[] again = await Together(scheduler, (b, Greedy()), (a, Greedy()));
        SameAnswer(expectedB, again[0]);
        SameAnswer(expectedA, again[1]);
        Assert.Equal(again[0].PromptTokens - 1, again[0].CachedPromptTokens);
        Assert.InRange(again[1].CachedPromptTokens, 1, again[1].PromptTokens - 2);

        async Task<GenerationResult[]> Together(BatchScheduler s, params (ChatTurn[] Turns, GenerationOptions Options)[] requests)
        {
            // Prompts are built first and submitted back to back, so both join one batch in this order.
            var prompts = requests.Select(r => model.BuildPrompt(r.Turns, clip)).ToList();
            var feeds = prompts.Select((p, i) => s.Submit(p.Embeddings, p.Ids, model.Tokenizer.CreateDetokenizer(false), requests[i].Options, p.Key)).ToList();
            return await Task.WhenAll(feeds.Select(async feed =>
            {
                GenerationResult? result = null;
                await foreach (GenerationUpdate u in feed) result = u.Result ?? result;
                return result!;
            }));
        }
    }

    [Fact]
    public void APrefixEndingInsideABlockIsReusedToItsLastPositionAndAWholeBlockReplacesThatTail()
    {
        using var cache = new PrefixCache(64L << 20, Block);
        UInt128 scope = PromptKey.ScopeOf(model.Identity, "t");
        PromptKey Key(int n) => PromptKey.ForText(scope, Enumerable.Range(100, n));
        long blockBytes = model.Llama.Config.NumHiddenLayers * 2L * model.Llama.Config.KeyValueHeads * Block * model.Llama.Config.HeadDim * 4;
        using KvCache written = Filled(2 * Block + 4, seed: 1);
        cache.Insert(Key(2 * Block + 4), written);
        // A tail takes, and is charged, a whole block's memory.
        Assert.Equal(3 * blockBytes, cache.BytesHeld);

        using KvCache read = model.Llama.NewCache(4 * Block);
        Assert.Equal(2 * Block + 4, cache.Restore(Key(3 * Block), 3 * Block - 1, read));
        AssertSameState(written, read, 2 * Block + 4);
        read.Reset();
        Assert.Equal(2 * Block + 3, cache.Restore(Key(2 * Block + 3), 2 * Block + 3, read));

        // The same prefix grown past the block: a whole block and a tail of 2 hold it, and the tail of 4 it covers goes.
        using KvCache longer = Filled(3 * Block + 2, seed: 1);
        cache.Insert(Key(3 * Block + 2), longer);
        Assert.Equal(4 * blockBytes, cache.BytesHeld);
        Assert.Equal(1, cache.Evictions);
        read.Reset();
        Assert.Equal(3 * Block + 2, cache.Restore(Key(4 * Block), 4 * Block - 1, read));
        AssertSameState(longer, read, 3 * Block + 2);
    }

    /// <summary>A cache of <paramref name="length"/> positions of random keys and values (the same for a seed).</summary>
    private KvCache Filled(int length, int seed)
    {
        KvCache kv = model.Llama.NewCache(4 * Block);
        using var generator = new TorchSharp.torch.Generator((ulong)seed);
        for (int layer = 0; layer < model.Llama.Config.NumHiddenLayers; layer++)
        {
            (Tensor k, Tensor v) = kv.Layer(layer);
            using (Tensor r = randn(k.shape, generator: generator)) k.copy_(r);
            using (Tensor r = randn(v.shape, generator: generator)) v.copy_(r);
        }
        kv.SetLength(length);
        return kv;
    }

    private void AssertSameState(KvCache expected, KvCache actual, int length)
    {
        Assert.Equal(length, actual.Length);
        using var scope = NewDisposeScope();
        for (int layer = 0; layer < model.Llama.Config.NumHiddenLayers; layer++)
        {
            (Tensor ek, Tensor ev) = expected.Layer(layer);
            (Tensor ak, Tensor av) = actual.Layer(layer);
            Assert.True(ek.narrow(2, 0, length).eq(ak.narrow(2, 0, length)).all().item<bool>(), $"keys of layer {layer}");
            Assert.True(ev.narrow(2, 0, length).eq(av.narrow(2, 0, length)).all().item<bool>(), $"values of layer {layer}");
        }
    }
}
