using System.Text.Json;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using static TorchSharp.torch;

namespace LLark.Tests.Language.Engine.Model;

/// <summary>Sequences at different positions decoding in one batch give what each gives alone.</summary>
public sealed class BatchDecodeTests
{
    [Theory]
    [InlineData("llama-tiny/llama-mha-fp16", "mha")]
    [InlineData("llama-tiny/llama-gqa-fp32-sharded", "gqa")]
    public void EveryRowOfABatchedStepMatchesTheReferenceGreedyRun(string folder, string reference)
    {
        var golden = new LlamaReference(reference);
        JsonElement[] prompts = [.. golden.Prompts.Where(p => p.GetProperty("name").GetString() is "short" or "story" or "bos_only" or "license_long")];
        using LlamaForCausalLM model = LlamaFidelityTests.Load(folder);
        using BatchKvCache cache = model.NewBatchCache(slots: prompts.Length + 1, capacity: 128);
        int steps = 20;
        var next = new int[prompts.Length];
        var produced = prompts.Select(_ => new List<int>()).ToArray();
        for (int i = 0; i < prompts.Length; i++)
        {
            int[] ids = LlamaReference.Ints(prompts[i].GetProperty("ids"));
            using var scope = NewDisposeScope();
            Tensor logits = model.ForwardIds(tensor(ids.Select(x => (long)x).ToArray()).unsqueeze(0), cache.Slot(i));
            next[i] = TokenSampler.ArgMax(logits.data<float>().ToArray());
            produced[i].Add(next[i]);
        }
        for (int step = 1; step < steps; step++)
        {
            using var scope = NewDisposeScope();
            float[] logits = model.DecodeBatch(next, cache).data<float>().ToArray();
            int vocab = model.Config.VocabSize;
            for (int i = 0; i < prompts.Length; i++)
            {
                next[i] = TokenSampler.ArgMax(logits.AsSpan(i * vocab, vocab));
                produced[i].Add(next[i]);
            }
        }
        for (int i = 0; i < prompts.Length; i++)
        {
            int[] expected = LlamaReference.Ints(prompts[i].GetProperty("greedy_32"))[..steps];
            float[] gaps = LlamaReference.Floats(prompts[i].GetProperty("greedy_32_top1_minus_top2"));
            int sure = Array.FindIndex(gaps, g => g < 1e-3f) is var k && k >= 0 ? Math.Min(k + 1, steps) : steps;
            Assert.Equal(expected[..sure], produced[i].Take(sure));
        }
    }

    [Fact]
    public void AMovedSlotContinuesWhereItLeftOff()
    {
        var golden = new LlamaReference("gqa");
        JsonElement story = golden.Prompt("story");
        int[] ids = LlamaReference.Ints(story.GetProperty("ids"));
        int[] expected = LlamaReference.Ints(story.GetProperty("greedy_32"));
        using LlamaForCausalLM model = LlamaFidelityTests.Load("llama-tiny/llama-gqa-bf16");
        using BatchKvCache cache = model.NewBatchCache(slots: 3, capacity: 96);
        using var scope = NewDisposeScope();
        int first = TokenSampler.ArgMax(model.ForwardIds(tensor(ids.Select(x => (long)x).ToArray()).unsqueeze(0), cache.Slot(2)).data<float>().ToArray());
        cache.Move(2, 0);
        Assert.Equal(0, cache.Slot(2).Length);
        Assert.Equal(ids.Length, cache.Slot(0).Length);
        var tokens = new List<int> { first };
        for (int step = 1; step < 8; step++)
            tokens.Add(TokenSampler.ArgMax(model.DecodeBatch([tokens[^1]], cache).data<float>().ToArray()));
        Assert.Equal(expected[..8], tokens);
    }
}
