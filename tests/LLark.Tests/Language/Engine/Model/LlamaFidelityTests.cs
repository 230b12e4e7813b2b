using System.Text.Json;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Tokenization;
using LLark.Tests.TestSupport;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Tests.Language.Engine.Model;

/// <summary>
/// The engine against the golden outputs of llama2.c's model.py, Meta's llama and run.c on the tiny
/// random-weight models, in every stored format (fp16, bf16, sharded fp32 safetensors, pickled .bin).
/// </summary>
public sealed class LlamaFidelityTests
{
    private const float Tolerance = 1e-3f;

    /// <summary>Every folder holding reference weights, with the reference set its numbers come from.</summary>
    public static TheoryData<string, string> Models => new()
    {
        { "llama-tiny/llama-mha-fp16", "mha" },
        { "llama-tiny/llama-gqa-fp32-sharded", "gqa" },
        { "llama-tiny/llama-gqa-bf16", "gqa" },
        { "checkpoints/llama-gqa-bin-fp16", "gqa" },
        { "checkpoints/llama-gqa-bin-bf16-sharded", "gqa" },
    };

    internal static LlamaForCausalLM Load(string folder) =>
        LlamaLoader.Load(RepoPaths.Fixture(folder.Split('/')));

    [Theory]
    [MemberData(nameof(Models))]
    public void LastPositionLogitsMatchForEveryPrompt(string folder, string reference)
    {
        var golden = new LlamaReference(reference);
        (float[] expected, long[] shape) = LlamaReference.Array(golden.Section("logits_last").GetProperty("file").GetString()!);
        using LlamaForCausalLM model = Load(folder);
        int vocab = (int)shape[1];
        foreach (JsonElement prompt in golden.Prompts)
        {
            int row = prompt.GetProperty("logits_last_row").GetInt32();
            float[] actual = Logits(model, LlamaReference.Ints(prompt.GetProperty("ids")), lastOnly: true);
            AssertClose(expected.AsSpan(row * vocab, vocab), actual, $"{folder} prompt {prompt.GetProperty("name").GetString()}");
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void LogitsMatchAtEveryPositionInPrefillAndInTokenByTokenDecode(string folder, string reference)
    {
        var golden = new LlamaReference(reference);
        JsonElement section = golden.Section("logits_all");
        (float[] expected, long[] shape) = LlamaReference.Array(section.GetProperty("file").GetString()!);
        int[] ids = LlamaReference.Ints(golden.Prompt(section.GetProperty("prompt").GetString()!).GetProperty("ids"));
        Assert.Equal(shape[0], ids.Length);
        using LlamaForCausalLM model = Load(folder);

        AssertClose(expected, Logits(model, ids, lastOnly: false), $"{folder} prefill");

        using KvCache cache = model.NewCache(ids.Length);
        int vocab = (int)shape[1];
        var stepped = new float[expected.Length];
        for (int t = 0; t < ids.Length; t++)
        {
            using var scope = NewDisposeScope();
            Tensor logits = model.ForwardIds(tensor(new long[] { ids[t] }).view(1, 1), cache);
            logits.data<float>().CopyTo(stepped, t * vocab);
        }
        AssertClose(expected, stepped, $"{folder} decode with KV cache");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void PrefillAfterACachedPrefixMatches(string folder, string reference)
    {
        var golden = new LlamaReference(reference);
        JsonElement section = golden.Section("logits_all");
        (float[] expected, long[] shape) = LlamaReference.Array(section.GetProperty("file").GetString()!);
        int[] ids = LlamaReference.Ints(golden.Prompt(section.GetProperty("prompt").GetString()!).GetProperty("ids"));
        using LlamaForCausalLM model = Load(folder);
        using KvCache cache = model.NewCache(ids.Length);
        int split = 17, vocab = (int)shape[1];
        using var scope = NewDisposeScope();
        model.ForwardIds(tensor(ids[..split].Select(i => (long)i).ToArray()).unsqueeze(0), cache, lastOnly: false);
        Tensor rest = model.ForwardIds(tensor(ids[split..].Select(i => (long)i).ToArray()).unsqueeze(0), cache, lastOnly: false);
        AssertClose(expected.AsSpan(split * vocab), rest.data<float>().ToArray(), $"{folder} chunked prefill");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void HiddenStatesAndFinalNormMatchLayerByLayer(string folder, string reference)
    {
        var golden = new LlamaReference(reference);
        JsonElement hidden = golden.Section("hidden_states");
        (float[] expected, long[] shape) = LlamaReference.Array(hidden.GetProperty("file").GetString()!);
        (float[] finalNorm, _) = LlamaReference.Array(golden.Section("final_norm").GetProperty("file").GetString()!);
        int[] ids = LlamaReference.Ints(hidden.GetProperty("prompt_ids"));
        using LlamaForCausalLM model = Load(folder);
        using KvCache cache = model.NewCache(ids.Length);
        using var scope = NewDisposeScope();
        var states = new List<Tensor>();
        model.ForwardIds(tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0), cache, lastOnly: false, hiddenStates: states);
        Assert.Equal(shape[0], states.Count);
        long perLayer = shape[1] * shape[2];
        for (int layer = 0; layer < states.Count; layer++)
        {
            float[] actual = states[layer].to(ScalarType.Float32).data<float>().ToArray();
            AssertClose(expected.AsSpan((int)(layer * perLayer), (int)perLayer), actual, $"{folder} hidden state {layer}");
        }
        // model.norm over the last layer's output, with the loaded weight and the config's eps.
        Tensor last = states[^1].to(ScalarType.Float32);
        Tensor normed = last.mul(last.square().mean([-1], keepdim: true).add(model.Config.RmsNormEps).rsqrt())
            .mul(model.CheckpointParameters()["model.norm.weight"].to(ScalarType.Float32));
        AssertClose(finalNorm, normed.data<float>().ToArray(), $"{folder} final norm");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void GreedyContinuationsMatchTokenForToken(string folder, string reference)
    {
        var golden = new LlamaReference(reference);
        using LlamaForCausalLM model = Load(folder);
        var generator = new TextGenerator(model);
        foreach (JsonElement prompt in golden.Prompts)
        {
            int[] expected = LlamaReference.Ints(prompt.GetProperty("greedy_32"));
            float[] gaps = LlamaReference.Floats(prompt.GetProperty("greedy_32_top1_minus_top2"));
            GenerationResult result = Run(generator, LlamaReference.Ints(prompt.GetProperty("ids")), expected.Length);
            AssertSameUntilAmbiguous(expected, gaps, result.TokenIds, $"{folder} {prompt.GetProperty("name").GetString()}");
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void LongGreedyRunMatches(string folder, string reference)
    {
        var golden = new LlamaReference(reference);
        JsonElement run = golden.Section("long_greedy");
        int[] expected = LlamaReference.Ints(run.GetProperty("tokens"));
        using LlamaForCausalLM model = Load(folder);
        GenerationResult result = Run(new TextGenerator(model), LlamaReference.Ints(run.GetProperty("prompt_ids")), expected.Length);
        AssertSameUntilAmbiguous(expected, LlamaReference.Floats(run.GetProperty("top1_minus_top2")), result.TokenIds, folder);
        Assert.Equal(FinishReason.Length, result.FinishReason);
    }

    [Fact]
    public void PromptPlusGreedyDecodesToTheRecordedText()
    {
        var golden = new LlamaReference("mha");
        LlamaTextTokenizer tokenizer = LlamaTextTokenizer.Load(RepoPaths.Fixture("llama-tiny", "tokenizer", "tokenizer.model"), addedTokens: []);
        foreach (JsonElement prompt in golden.Prompts)
        {
            int[] ids = [.. LlamaReference.Ints(prompt.GetProperty("ids")), .. LlamaReference.Ints(prompt.GetProperty("greedy_32"))];
            Assert.Equal(prompt.GetProperty("decoded_prompt_plus_greedy_32").GetString(), tokenizer.Decode(ids));
        }
    }

    [Fact]
    public void BFloat16ComputeStaysWithinTheRecordedHalfPrecisionDrift()
    {
        var golden = new LlamaReference("gqa");
        JsonElement section = golden.Section("logits_all");
        (float[] expected, _) = LlamaReference.Array(section.GetProperty("file").GetString()!);
        int[] ids = LlamaReference.Ints(golden.Prompt("license_long").GetProperty("ids"));
        using LlamaForCausalLM model = LlamaLoader.Load(RepoPaths.Fixture("llama-tiny", "llama-gqa-bf16"),
            new LlamaLoadOptions { DType = ScalarType.BFloat16 });
        Assert.Equal(ScalarType.BFloat16, model.EmbeddingWeight.dtype);
        float[] actual = Logits(model, ids, lastOnly: false);
        float recorded = golden.Section("half_precision_compute_license_long").GetProperty("gqa_bfloat16").GetProperty("max_abs").GetSingle();
        float worst = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
        // bf16 rounds differently from PyTorch's kernels step by step; the drift must be of the recorded size, not larger.
        Assert.InRange(worst, 1e-3f, 2.5f * recorded);
    }

    internal static float[] Logits(LlamaForCausalLM model, int[] ids, bool lastOnly)
    {
        using KvCache cache = model.NewCache(ids.Length);
        using var scope = NewDisposeScope();
        Tensor logits = model.ForwardIds(tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0), cache, lastOnly);
        return logits.data<float>().ToArray();
    }

    private static GenerationResult Run(TextGenerator generator, int[] prompt, int tokens)
    {
        var options = new GenerationOptions { MaxNewTokens = tokens, StopOnEos = false };
        return generator.Generate(prompt, NullTextDecoder.Instance, options).Last().Result!;
    }

    private static void AssertSameUntilAmbiguous(int[] expected, float[] gaps, IReadOnlyList<int> actual, string what)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(i < actual.Count, $"{what}: stopped after {actual.Count} tokens");
            Assert.True(expected[i] == actual[i], $"{what}: token {i} is {actual[i]}, expected {expected[i]}");
            if (gaps[i] < Tolerance) return;
        }
    }

    private static void AssertClose(ReadOnlySpan<float> expected, float[] actual, string what) =>
        LlamaReference.AssertClose(expected, actual, what, Tolerance);
}
