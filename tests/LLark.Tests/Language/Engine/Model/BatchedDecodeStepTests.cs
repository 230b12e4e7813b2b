using System.Text.Json;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using static TorchSharp.torch;

namespace LLark.Tests.Language.Engine.Model;

/// <summary>
/// The managed batched decode step (every weight read once for all rows) is the same model as libtorch's batched
/// step and as the batch-1 managed step, for rows at different positions that join and leave the batch.
/// </summary>
public sealed unsafe class BatchedDecodeStepTests
{
    private const float Tolerance = 1e-4f;

    private static readonly string[] PromptNames = ["story", "short", "license_long", "bos_only"];

    [Theory]
    [InlineData("llama-tiny/llama-mha-fp16", "mha")]
    [InlineData("llama-tiny/llama-gqa-fp32-sharded", "gqa")]
    public void BatchedStepMatchesLibTorchAndPerRowDecodeAsRowsJoinAndLeave(string folder, string reference)
    {
        var golden = new LlamaReference(reference);
        int[][] prompts = [.. PromptNames.Select(n => LlamaReference.Ints(golden.Prompt(n).GetProperty("ids")))];
        using LlamaForCausalLM model = LlamaFidelityTests.Load(folder);
        Assert.True(model.DecodesInManagedCode);
        int vocab = model.Config.VocabSize, capacity = 160;
        using BatchKvCache managed = model.NewBatchCache(slots: 4, capacity);
        using BatchKvCache torchCache = model.NewBatchCache(slots: 4, capacity);
        var alone = new List<KvCache>();
        // Which prompt each slot holds, and the token each sequence feeds next (the managed step's greedy choice).
        var slots = new List<int>();
        var next = new List<int>();
        try
        {
            void Join(int prompt)
            {
                int slot = slots.Count;
                // Made outside the dispose scope, which would otherwise free its tensors.
                KvCache own = model.NewCache(capacity);
                alone.Add(own);
                using var scope = NewDisposeScope();
                Tensor ids = tensor(prompts[prompt].Select(i => (long)i).ToArray()).unsqueeze(0);
                float[] first = model.ForwardIds(ids, managed.Slot(slot)).data<float>().ToArray();
                model.ForwardIds(ids, torchCache.Slot(slot));
                model.ForwardIds(ids, own);
                slots.Add(prompt);
                next.Add(TokenSampler.ArgMax(first));
            }
            void Leave(int slot)
            {
                // As the scheduler compacts: the last sequence moves into the freed slot.
                int last = slots.Count - 1;
                managed.Move(last, slot);
                torchCache.Move(last, slot);
                alone[slot].Dispose();
                alone[slot] = alone[last];
                slots[slot] = slots[last];
                next[slot] = next[last];
                alone.RemoveAt(last);
                slots.RemoveAt(last);
                next.RemoveAt(last);
            }

            Join(0);
            Join(1);
            int steps = 0;
            for (int step = 0; step < 24; step++)
            {
                if (step == 3) Join(2);
                if (step == 6) Join(3);
                if (step == 10) Leave(0);
                if (step == 15) Leave(1);
                int n = slots.Count;
                int[] ids = [.. next];
                int[] positions = [.. Enumerable.Range(0, n).Select(i => managed.Slot(i).Length)];
                var batched = new float[n * vocab];
                model.DecodeBatch(ids, managed, batched);
                float[] viaTorch;
                using (NewDisposeScope()) viaTorch = model.DecodeBatchLibTorch(ids, torchCache).data<float>().ToArray();
                for (int i = 0; i < n; i++)
                {
                    var single = new float[vocab];
                    model.DecodeToken(ids[i], alone[i], single);
                    ReadOnlySpan<float> row = batched.AsSpan(i * vocab, vocab);
                    string what = $"{folder} step {step}, slot {i} (prompt {slots[i]}, position {positions[i]})";
                    AssertClose(viaTorch.AsSpan(i * vocab, vocab), row, $"{what} vs libtorch");
                    // The batched step sums every product as the batch-1 step does: not just close, the same floats.
                    Assert.True(row.SequenceEqual(single), $"{what}: differs from the batch-1 step");
                    Assert.Equal(positions[i] + 1, managed.Slot(i).Length);
                    Assert.Equal(alone[i].Length, managed.Slot(i).Length);
                    next[i] = TokenSampler.ArgMax(row);
                }
                steps++;
            }
            Assert.Equal(24, steps);
            // The rows really sat at different positions when they shared a step.
            Assert.Equal(slots.Count, Enumerable.Range(0, slots.Count).Select(i => managed.Slot(i).Length).Distinct().Count());
        }
        finally
        {
            foreach (KvCache c in alone) c.Dispose();
        }
    }

    [Fact]
    public void TheBatchedProductSumsEveryRowLikeTheOneRowDotProduct()
    {
        // Lengths that take every path: below one vector, one vector, pairs of vectors with and without a leftover
        // vector and a scalar tail; batches of odd and even row counts; weight rows that leave a partial block of four.
        var random = new Random(3);
        foreach (int k in new[] { 7, 16, 40, 48, 288, 301 })
        foreach (int m in new[] { 1, 2, 3, 5, 8 })
        foreach (int n in new[] { 1, 6, 9, 130 })
        {
            float[] w = [.. Enumerable.Range(0, n * k).Select(_ => (float)(random.NextDouble() * 2 - 1))];
            float[] x = [.. Enumerable.Range(0, m * k).Select(_ => (float)(random.NextDouble() * 2 - 1))];
            float[] bias = [.. Enumerable.Range(0, m * n).Select(_ => (float)random.NextDouble())];
            var y = new float[m * n];
            var acc = (float[])bias.Clone();
            fixed (float* wp = w, xp = x, yp = y, ap = acc)
            {
                DecodeStep.MatMul(new WeightRows(WeightFormat.Fp32, (byte*)wp, null, k), xp, yp, m, n, k, accumulate: false);
                DecodeStep.MatMul(new WeightRows(WeightFormat.Fp32, (byte*)wp, null, k), xp, ap, m, n, k, accumulate: true);
                for (int i = 0; i < m; i++)
                for (int r = 0; r < n; r++)
                {
                    float dot = SkinnyMatMul.Dot(wp + r * k, xp + i * k, k);
                    Assert.True(dot == y[i * n + r], $"k={k} m={m} n={n} y[{i}, {r}] = {y[i * n + r]}, dot {dot}");
                    Assert.True(bias[i * n + r] + dot == acc[i * n + r], $"k={k} m={m} n={n} accumulated y[{i}, {r}]");
                }
            }
        }
    }

    [Theory]
    [InlineData("llama-tiny/llama-mha-fp16", "mha")]
    [InlineData("llama-tiny/llama-gqa-fp32-sharded", "gqa")]
    public void TheManagedPrefillIsLibTorchsPrefillAcrossChunksAndOnAFilledCache(string folder, string reference)
    {
        var golden = new LlamaReference(reference);
        // Every prompt back to back: longer than one prefill chunk, so rows meet keys from an earlier chunk.
        int[] ids = [.. PromptNames.SelectMany(n => LlamaReference.Ints(golden.Prompt(n).GetProperty("ids")))];
        Assert.True(ids.Length > DecodeStep.PrefillChunk + 10, $"{ids.Length} ids");
        using LlamaForCausalLM model = LlamaFidelityTests.Load(folder);
        Assert.True(model.DecodesInManagedCode);
        int vocab = model.Config.VocabSize, split = DecodeStep.PrefillChunk + 5;
        using KvCache managed = model.NewCache(256), viaTorch = model.NewCache(256);
        using var scope = NewDisposeScope();
        Tensor Embeds(int from, int count) => model.Embed(tensor(ids[from..(from + count)].Select(i => (long)i).ToArray()).unsqueeze(0));

        // Every position of a first piece, then the last position of the rest on top of it.
        float[] all = model.Forward(Embeds(0, split), managed, lastOnly: false).data<float>().ToArray();
        float[] allTorch = model.ForwardLibTorch(Embeds(0, split), viaTorch, lastOnly: false).data<float>().ToArray();
        Assert.Equal(split * vocab, all.Length);
        AssertClose(allTorch, all, $"{folder}: every position of {split} rows");
        int rest = ids.Length - split;
        float[] last = model.Forward(Embeds(split, rest), managed, lastOnly: true).data<float>().ToArray();
        float[] lastTorch = model.ForwardLibTorch(Embeds(split, rest), viaTorch, lastOnly: true).data<float>().ToArray();
        Assert.Equal(vocab, last.Length);
        AssertClose(lastTorch, last, $"{folder}: last of {rest} rows after {split}");
        Assert.Equal(ids.Length, managed.Length);

        // The keys and values the prefill wrote are the ones the next decode step reads.
        var next = new float[vocab];
        var nextTorch = new float[vocab];
        int token = TokenSampler.ArgMax(last);
        model.DecodeToken(token, managed, next);
        model.DecodeToken(token, viaTorch, nextTorch);
        AssertClose(nextTorch, next, $"{folder}: the decode step after the prefill");
    }

    [Theory]
    [InlineData("llama-tiny/llama-mha-fp16")]
    [InlineData("llama-tiny/llama-gqa-fp32-sharded")]
    public void APrefillOfManyRowsIsThoseRowsOneAtATimeBitForBit(string folder)
    {
        // The prefill multiplies its rows in tiles and attends four query rows of a head at a time; neither may change a
        // single row's arithmetic. 70 rows: a chunk, a part-chunk, and query blocks of four, three and one.
        var golden = new LlamaReference(folder.EndsWith("fp16", StringComparison.Ordinal) ? "mha" : "gqa");
        int[] ids = [.. PromptNames.SelectMany(n => LlamaReference.Ints(golden.Prompt(n).GetProperty("ids"))).Take(DecodeStep.PrefillChunk + 6)];
        using LlamaForCausalLM model = LlamaFidelityTests.Load(folder);
        int vocab = model.Config.VocabSize;
        using KvCache together = model.NewCache(ids.Length), alone = model.NewCache(ids.Length);
        using var scope = NewDisposeScope();
        Tensor embeds = model.Embed(tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0));
        // Two rows first, so the big prefill starts on a filled cache at an odd offset.
        float[] head = model.Forward(embeds.narrow(1, 0, 2), together, lastOnly: false).data<float>().ToArray();
        float[] rest = model.Forward(embeds.narrow(1, 2, ids.Length - 2), together, lastOnly: false).data<float>().ToArray();
        float[] all = [.. head, .. rest];
        for (int i = 0; i < ids.Length; i++)
        {
            float[] one = model.Forward(embeds.narrow(1, i, 1), alone, lastOnly: true).data<float>().ToArray();
            Assert.True(one.AsSpan().SequenceEqual(all.AsSpan(i * vocab, vocab)), $"{folder}: row {i} differs");
        }
    }

    [Fact]
    public void TheLaneSumAddsInItsDocumentedOrder()
    {
        // Without AVX-512 the products take 8-lane vectors and this sum is never used.
        if (!SkinnyMatMul.Wide) return;
        // Lanes of very different sizes, so that another order of the same additions rounds differently.
        var random = new Random(11);
        int differs = 0;
        for (int trial = 0; trial < 200; trial++)
        {
            float[] l = [.. Enumerable.Range(0, 16).Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-20, 20))))];
            float Quarter(int q) => (l[4 * q] + l[4 * q + 1]) + (l[4 * q + 2] + l[4 * q + 3]);
            float expected = (Quarter(0) + Quarter(1)) + (Quarter(2) + Quarter(3));
            float actual = SkinnyMatMul.Sum(System.Runtime.Intrinsics.Vector512.Create(l));
            Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual), $"trial {trial}: {actual}, expected {expected}");
            float leftToRight = 0;
            foreach (float v in l) leftToRight += v;
            if (leftToRight != expected) differs++;
        }
        // The data does tell orders apart.
        Assert.True(differs > 50, $"only {differs} of 200 sums depend on the order");
    }

    [Fact]
    public void ARowWhoseContextIsFullIsRefusedBeforeAnyRowAdvances()
    {
        using LlamaForCausalLM model = LlamaFidelityTests.Load("llama-tiny/llama-gqa-fp32-sharded");
        using BatchKvCache cache = model.NewBatchCache(slots: 2, capacity: 8);
        using var scope = NewDisposeScope();
        model.ForwardIds(tensor(new long[] { 1, 5, 9 }).unsqueeze(0), cache.Slot(0));
        model.ForwardIds(tensor(new long[] { 1, 5, 9, 4, 4, 4, 4, 4 }).unsqueeze(0), cache.Slot(1));
        var logits = new float[2 * model.Config.VocabSize];
        Assert.Throws<ContextLengthException>(() => model.DecodeBatch([7, 7], cache, logits));
        Assert.Equal(3, cache.Slot(0).Length);
        Assert.Equal(8, cache.Slot(1).Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.DecodeBatch([7, model.Config.VocabSize], cache, logits));
        Assert.Equal(3, cache.Slot(0).Length);
    }

    private static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what) =>
        LlamaReference.AssertClose(expected, actual, what, Tolerance);
}
