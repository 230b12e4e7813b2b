using System.Text.Json.Nodes;
using LLark.Checkpoints;
using LLark.Language.Engine.Model;
using LLark.Tests.Checkpoints;
using LLark.Tests.TestSupport;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Tests.Language.Engine.Model;

/// <summary>
/// The Llama loader on the pickled fixtures and on bad folders: every wrong config or checkpoint fails with a
/// <see cref="ModelConfigException"/> or <see cref="CheckpointException"/> that names the file, key or tensor.
/// </summary>
public sealed class LlamaLoaderTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    private static string Fixture(string folder) => RepoPaths.Fixture(folder.Split('/'));

    private static string GqaBf16 => Fixture("llama-tiny/llama-gqa-bf16");

    private static readonly string[] InvFreqNames =
        [.. Enumerable.Range(0, 3).Select(l => $"model.layers.{l}.self_attn.rotary_emb.inv_freq")];

    /// <summary>A copy of the gqa bf16 folder (config.json and model.safetensors) with the config edited.</summary>
    private string CopyWithConfig(Action<JsonObject> edit)
    {
        File.Copy(Path.Combine(GqaBf16, "model.safetensors"), dir.File("model.safetensors"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(GqaBf16, "config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        return dir.Path;
    }

    /// <summary>A copy of the gqa bf16 folder with the weights edited and written as safetensors.</summary>
    private string CopyWithWeights(Action<List<(string Name, Tensor Tensor)>> edit)
    {
        File.Copy(Path.Combine(GqaBf16, "config.json"), dir.File("config.json"));
        List<(string, Tensor)> tensors;
        using (var file = new SafetensorsFile(Path.Combine(GqaBf16, "model.safetensors")))
            tensors = [.. CheckpointFixtures.ReadAll(file).Select(p => (p.Key, p.Value))];
        edit(tensors);
        CheckpointFixtures.WriteSafetensors(dir.File("model.safetensors"), tensors);
        return dir.Path;
    }

    private static T Fails<T>(string folder, params string[] expected) where T : Exception
    {
        var e = Assert.Throws<T>(() => LlamaLoader.Load(folder).Dispose());
        foreach (string part in expected)
            Assert.Contains(part, e.Message, StringComparison.Ordinal);
        return e;
    }

    [Fact]
    public void Fp16BinLoadsWithoutItsInvFreqBuffers()
    {
        using var scope = NewDisposeScope();
        using LlamaForCausalLM model = LlamaLoader.Load(Fixture("checkpoints/llama-gqa-bin-fp16"));
        var parameters = model.CheckpointParameters();
        Assert.Equal(30, parameters.Count);
        Assert.DoesNotContain(parameters.Keys, LlamaLoader.IsDerivedBuffer);
        Assert.All(InvFreqNames, n => Assert.True(LlamaLoader.IsDerivedBuffer(n)));
        Assert.False(LlamaLoader.IsDerivedBuffer("model.layers.0.self_attn.inv_freq.weight"));

        // Loaded in float32: the F16 file widened, which is the BF16 weights rounded to F16.
        using var bf16 = new SafetensorsFile(Path.Combine(GqaBf16, "model.safetensors"));
        foreach (var (name, weights) in CheckpointFixtures.ReadAll(bf16))
            CheckpointFixtures.AssertBitwiseEqual(weights.to(ScalarType.Float16).to(ScalarType.Float32), parameters[name], name);
    }

    [Fact]
    public void InvFreqBuffersWouldBeUnexpectedWithoutTheLoadersFilter()
    {
        using var scope = NewDisposeScope();
        using LlamaForCausalLM model = LlamaLoader.Load(GqaBf16);
        using var bin = CheckpointOpener.Open(Fixture("checkpoints/llama-gqa-bin-fp16"));
        var e = Assert.Throws<CheckpointException>(() => StrictLoader.Load(model.CheckpointParameters(), bin));
        Assert.Contains($"3 unexpected in the checkpoint: {string.Join(", ", InvFreqNames)}.", e.Message, StringComparison.Ordinal);
        StrictLoader.Load(model.CheckpointParameters(), bin, LlamaLoader.IsDerivedBuffer);
    }

    [Fact]
    public void Bf16ShardedBinLoadsBitwiseInBf16()
    {
        using var scope = NewDisposeScope();
        using LlamaForCausalLM model = LlamaLoader.Load(Fixture("checkpoints/llama-gqa-bin-bf16-sharded"), new LlamaLoadOptions { DType = ScalarType.BFloat16 });
        var parameters = model.CheckpointParameters();
        using var bf16 = new SafetensorsFile(Path.Combine(GqaBf16, "model.safetensors"));
        foreach (var (name, weights) in CheckpointFixtures.ReadAll(bf16))
            CheckpointFixtures.AssertBitwiseEqual(weights, parameters[name], name);
    }

    [Fact]
    public void ProgressCountsTheModelsTensorsOnly()
    {
        var reports = new List<LoadProgress>();
        using LlamaForCausalLM model = LlamaLoader.Load(Fixture("checkpoints/llama-gqa-bin-fp16"),
            new LlamaLoadOptions { Progress = new Synchronous(reports.Add) });
        Assert.Equal(30, reports.Count);
        Assert.All(reports, r => Assert.Equal(30, r.TensorsTotal));
        Assert.DoesNotContain(reports, r => LlamaLoader.IsDerivedBuffer(r.CurrentName));
        // F16 on disk: two bytes per parameter.
        Assert.Equal(2 * 631_680L, reports[^1].BytesDone);
    }

    private sealed class Synchronous(Action<LoadProgress> report) : IProgress<LoadProgress>
    {
        public void Report(LoadProgress value) => report(value);
    }

    // ---- missing pieces

    [Fact]
    public void MissingFolderIsNamed()
    {
        string missing = Path.Combine(dir.Path, "no-model");
        Fails<CheckpointException>(missing, $"model folder not found: {missing}");
    }

    [Fact]
    public void MissingConfigIsNamed()
    {
        File.Copy(Path.Combine(GqaBf16, "model.safetensors"), dir.File("model.safetensors"));
        Fails<ModelConfigException>(dir.Path, $"config not found: {dir.File("config.json")}");
    }

    [Fact]
    public void MissingWeightsAreNamed()
    {
        File.Copy(Path.Combine(GqaBf16, "config.json"), dir.File("config.json"));
        Fails<CheckpointException>(dir.Path, $"Checkpoint directory {dir.Path} holds none of: model.safetensors");
    }

    [Fact]
    public void CorruptWeightsAreNamed()
    {
        File.Copy(Path.Combine(GqaBf16, "config.json"), dir.File("config.json"));
        File.WriteAllBytes(dir.File("pytorch_model.bin"), [(byte)'P', (byte)'K', 3, 4, 0, 0]);
        Fails<CheckpointException>(dir.Path, dir.File("pytorch_model.bin"), "is a damaged zip file");
    }

    // ---- config.json

    [Theory]
    [InlineData("{\"hidden_size\": 128,")]
    [InlineData("")]
    [InlineData("[]")]
    [InlineData("{\"hidden_size\": \"128\"}")]
    [InlineData("{\"hidden_size\": 128.5}")]
    [InlineData("{\"num_hidden_layers\": 3000000000}")]
    public void ConfigThatIsNotValidJsonIsNamed(string json)
    {
        File.WriteAllText(dir.File("config.json"), json);
        Fails<ModelConfigException>(dir.Path, dir.File("config.json"), "not valid JSON");
    }

    [Fact]
    public void NullConfigIsEmpty()
    {
        File.WriteAllText(dir.File("config.json"), "null");
        Fails<ModelConfigException>(dir.Path, $"{dir.File("config.json")}: empty config");
    }

    [Theory]
    [InlineData("""{"type": "linear", "factor": 2.0}""")]
    [InlineData("""{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}""")]
    [InlineData("""{"type": "dynamic", "factor": 2.0}""")]
    public void UnsupportedRopeScalingIsRefused(string scaling)
    {
        string folder = CopyWithConfig(c => c["rope_scaling"] = JsonNode.Parse(scaling));
        Fails<ModelConfigException>(folder, $"{dir.File("config.json")}: rope_scaling is not supported");
    }

    [Theory]
    [InlineData("hidden_act", "\"gelu\"", "hidden_act 'gelu' is not supported (only silu)")]
    [InlineData("model_type", "\"mistral\"", "model_type 'mistral' is not llama")]
    [InlineData("attention_bias", "true", "attention_bias=true is not supported")]
    [InlineData("mlp_bias", "true", "mlp_bias=true is not supported")]
    [InlineData("vocab_size", "0", "vocab_size must be positive")]
    [InlineData("intermediate_size", "-1", "intermediate_size must be positive")]
    [InlineData("num_attention_heads", "0", "num_attention_heads must be positive")]
    [InlineData("hidden_size", "100", "hidden_size 100 is not divisible by num_attention_heads 8")]
    [InlineData("hidden_size", "24", "head dim 3 must be even for rotary embeddings")]
    [InlineData("num_key_value_heads", "3", "num_attention_heads 8 is not a multiple of num_key_value_heads 3")]
    [InlineData("num_key_value_heads", "0", "num_attention_heads 8 is not a multiple of num_key_value_heads 0")]
    [InlineData("rms_norm_eps", "0", "rms_norm_eps must be positive")]
    [InlineData("rope_theta", "-1", "rope_theta must be positive")]
    [InlineData("max_position_embeddings", "0", "max_position_embeddings must be positive")]
    public void UnsupportedConfigValuesAreNamed(string key, string value, string problem)
    {
        string folder = CopyWithConfig(c => c[key] = JsonNode.Parse(value));
        Fails<ModelConfigException>(folder, $"{dir.File("config.json")}: {problem}");
    }

    [Fact]
    public void AbsentKvHeadsMeanMultiHeadAttention()
    {
        // num_key_value_heads absent: 8 kv heads, so k_proj and v_proj should be [128, 128], not the stored [64, 128].
        string folder = CopyWithConfig(c => c.Remove("num_key_value_heads"));
        Fails<ModelConfigException>(folder, "heads 8/8",
            "model.layers.0.self_attn.k_proj.weight is [64, 128] in the checkpoint but config.json implies [128, 128]");
    }

    // ---- config.json against the weights

    [Fact]
    public void HiddenSizeThatDisagreesWithTheWeightsNamesTheTensors()
    {
        string folder = CopyWithConfig(c => c["hidden_size"] = 64);
        var e = Fails<ModelConfigException>(folder,
            "config.json (hidden 64, layers 3, heads 8/4, ffn 192, vocab 1024) disagrees with the weights: ",
            "model.embed_tokens.weight is [1024, 128] in the checkpoint but config.json implies [1024, 64]",
            "; and ");
        Assert.Contains(" more", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("intermediate_size", 256, "model.layers.0.mlp.gate_proj.weight is [192, 128] in the checkpoint but config.json implies [256, 128]")]
    [InlineData("vocab_size", 1000, "model.embed_tokens.weight is [1024, 128] in the checkpoint but config.json implies [1000, 128]")]
    [InlineData("vocab_size", 1000, "lm_head.weight is [1024, 128] in the checkpoint but config.json implies [1000, 128]")]
    [InlineData("num_key_value_heads", 2, "model.layers.0.self_attn.k_proj.weight is [64, 128] in the checkpoint but config.json implies [32, 128]")]
    [InlineData("num_attention_heads", 4, "model.layers.0.self_attn.k_proj.weight is [64, 128] in the checkpoint but config.json implies [128, 128]")]
    public void SizeThatDisagreesWithTheWeightsNamesTheTensor(string key, int value, string problem)
    {
        string folder = CopyWithConfig(c => c[key] = value);
        Fails<ModelConfigException>(folder, "disagrees with the weights", problem);
    }

    [Fact]
    public void TooFewLayersLeaveTensorsUnexpected()
    {
        string folder = CopyWithConfig(c => c["num_hidden_layers"] = 2);
        Fails<CheckpointException>(folder, dir.File("model.safetensors"), "9 unexpected in the checkpoint: model.layers.2.input_layernorm.weight,");
    }

    [Fact]
    public void TooManyLayersLeaveTensorsMissing()
    {
        string folder = CopyWithConfig(c => c["num_hidden_layers"] = 4);
        Fails<CheckpointException>(folder, dir.File("model.safetensors"), "9 missing from the checkpoint: model.layers.3.input_layernorm.weight,");
    }

    [Fact]
    public void TiedEmbeddingsConfigWithAnLmHeadLeavesItUnexpected()
    {
        string folder = CopyWithConfig(c => c["tie_word_embeddings"] = true);
        Fails<CheckpointException>(folder, "1 unexpected in the checkpoint: lm_head.weight.");
    }

    // ---- weights against config.json

    [Fact]
    public void MissingTensorIsNamed()
    {
        string folder = CopyWithWeights(t => t.RemoveAll(p => p.Name == "model.norm.weight"));
        Fails<CheckpointException>(folder, $"Checkpoint {dir.File("model.safetensors")} does not fit the model.", "1 missing from the checkpoint: model.norm.weight.");
    }

    [Fact]
    public void ExtraTensorIsNamed()
    {
        string folder = CopyWithWeights(t => t.Add(("model.layers.0.self_attn.q_proj.bias", zeros(128, dtype: ScalarType.BFloat16))));
        Fails<CheckpointException>(folder, dir.File("model.safetensors"), "1 unexpected in the checkpoint: model.layers.0.self_attn.q_proj.bias.");
    }

    [Fact]
    public void ExtraInvFreqTensorIsIgnored()
    {
        using var scope = NewDisposeScope();
        string folder = CopyWithWeights(t => t.Add(("model.layers.1.self_attn.rotary_emb.inv_freq", ones(8))));
        using LlamaForCausalLM model = LlamaLoader.Load(folder);
        Assert.Equal(30, model.CheckpointParameters().Count);
    }

    [Fact]
    public void MisShapedTensorIsNamed()
    {
        string folder = CopyWithWeights(t =>
        {
            int i = t.FindIndex(p => p.Name == "model.layers.1.mlp.down_proj.weight");
            t[i] = (t[i].Name, t[i].Tensor.t().contiguous());
        });
        Fails<ModelConfigException>(folder, "model.layers.1.mlp.down_proj.weight is [192, 128] in the checkpoint but config.json implies [128, 192]");
    }
}
