using LLark.Language.Engine.Model;
using LLark.Language.Engine.Tokenization;
using LLark.Tests.TestSupport;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Tests.Language.Engine.Model;

/// <summary>
/// Llama-2-7B-chat, and LLark's variant with four added tokens, built on the meta device: every tensor
/// name and shape of the real checkpoint, no weight allocated.
/// </summary>
public sealed class FullSizeShapeTests
{
    private static LlamaConfig Llama2Chat7B() => LlamaConfig.FromFile(RepoPaths.Fixture("llama2-7b-chat", "config.json"));

    /// <summary>The 291 tensors of Hugging Face's Llama-2-7b-chat-hf, as its model.safetensors.index.json lists them.</summary>
    private static Dictionary<string, long[]> CheckpointShapes(int vocab)
    {
        var shapes = new Dictionary<string, long[]>
        {
            ["model.embed_tokens.weight"] = [vocab, 4096],
            ["model.norm.weight"] = [4096],
            ["lm_head.weight"] = [vocab, 4096],
        };
        for (int i = 0; i < 32; i++)
        {
            string p = $"model.layers.{i}.";
            foreach (string proj in new[] { "q_proj", "k_proj", "v_proj", "o_proj" }) shapes[p + $"self_attn.{proj}.weight"] = [4096, 4096];
            shapes[p + "mlp.gate_proj.weight"] = [11008, 4096];
            shapes[p + "mlp.up_proj.weight"] = [11008, 4096];
            shapes[p + "mlp.down_proj.weight"] = [4096, 11008];
            shapes[p + "input_layernorm.weight"] = [4096];
            shapes[p + "post_attention_layernorm.weight"] = [4096];
        }
        return shapes;
    }

    [Theory]
    [InlineData(32000, 6_738_415_616L)]
    [InlineData(32004, 6_738_448_384L)]
    public void TheModelHasEveryTensorOfTheRealCheckpointWithoutAllocating(int vocab, long parameterCount)
    {
        LlamaConfig config = Llama2Chat7B() with { VocabSize = vocab };
        long residentBefore = Environment.WorkingSet;
        using var model = new LlamaForCausalLM(config, ScalarType.Float16, META);
        IReadOnlyDictionary<string, Tensor> parameters = model.CheckpointParameters();
        Dictionary<string, long[]> expected = CheckpointShapes(vocab);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), parameters.Keys.Order(StringComparer.Ordinal));
        foreach ((string name, long[] shape) in expected)
        {
            Assert.True(shape.SequenceEqual(parameters[name].shape), $"{name}: [{string.Join(", ", parameters[name].shape)}]");
            Assert.Equal(DeviceType.META, parameters[name].device_type);
        }
        Assert.Equal(parameterCount, parameters.Values.Sum(p => p.NumberOfElements));
        // 13.5 GB of fp16 weights were never touched: the process grew by far less than one layer.
        Assert.True(Environment.WorkingSet - residentBefore < 200L << 20, "the meta model allocated memory");
    }

    [Fact]
    public void LLarksTokenizerFitsTheWidenedVocabulary()
    {
        LlamaTextTokenizer tokenizer = LlamaTextTokenizer.Load(RepoPaths.Fixture("llama2-tokenizer-model", "tokenizer.model"));
        Assert.Equal(32000, tokenizer.BaseVocabSize);
        Assert.Equal(32004, tokenizer.VocabSize);
        LlamaConfig config = Llama2Chat7B() with { VocabSize = tokenizer.VocabSize };
        Assert.Equal(4096, config.MaxPositionEmbeddings);
        Assert.Equal(128, config.HeadDim);
        Assert.Equal(1e-6, config.RmsNormEps);
    }

    [Fact]
    public void TheKvCacheOfAFullContextIsPlannedFromTheConfig()
    {
        LlamaConfig config = Llama2Chat7B();
        // Per token: keys and values, 32 layers x 32 kv heads x 128 dims, fp16 = 512 KiB; 4096 tokens = 2 GiB.
        using var cache = new KvCache(config, batchSize: 1, capacity: config.MaxPositionEmbeddings, ScalarType.Float16, META);
        Assert.Equal(2L << 30, cache.Bytes);
    }
}
