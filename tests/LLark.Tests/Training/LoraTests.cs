using LLark.Checkpoints;
using LLark.Tests.Checkpoints;
using LLark.Tests.TestSupport;
using LLark.Training;
using static TorchSharp.torch;

namespace LLark.Tests.Training;

public sealed class LoraTests
{
    private static Tensor Read(ITensorSource source, string name)
    {
        TensorEntry entry = source.Entries[name];
        Tensor t = empty(entry.Shape, dtype: entry.DType == StoredDType.I64 ? ScalarType.Int64 : ScalarType.Float32);
        source.ReadInto(name, t);
        return t;
    }

    /// <summary>
    /// With B = 0 the adapted model is the base model, so the loss is the reference's, and the chain rule gives
    /// dL/dB = s · G · Aᵀ and dL/dA = s · Bᵀ · G = 0, where G is the full weight's gradient (golden, from torch).
    /// </summary>
    [Fact]
    public void LoraStartsAtTheBaseModelAndItsGradientsAreTheChainRuleOfTheFullOnes()
    {
        using var dir = new TempDirectory();
        using ITensorSource golden = CheckpointOpener.Open(RepoPaths.Fixture("training", "tiny_full_two_steps.safetensors"));
        using Tensor ids = Read(golden, "input.ids"), labels = Read(golden, "input.labels");
        using Tensor frames = cat([Read(golden, "input.frames.0"), Read(golden, "input.frames.1")], 0);
        var batch = new TrainingBatch(ids.data<long>().ToArray(), labels.data<long>().ToArray(), (int)ids.shape[0], (int)ids.shape[1],
            frames.data<float>().ToArray(), (int)frames.shape[0], 0);
        using TrainableLLark model = TrainableLLark.Create(TrainingFixtures.Config(dir.Path, mode: "lora", loraDropout: 0), new AudioFormat(TinyLLark.AudioWidth, TinyLLark.Fps, null, null));
        Assert.Equal(2.0, model.Lora!.Scaling);
        Assert.Equal(2 + 4 * 7 * 2 + 1, model.Trained.Count);

        using (var scope = NewDisposeScope())
        {
            Tensor loss = model.Loss(batch);
            Assert.True(Math.Abs(loss.item<float>() - Read(golden, "loss.0").item<float>()) < 1e-4);
            loss.backward();
        }
        foreach (string name in new[] { "model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.v_proj.weight", "model.layers.1.mlp.down_proj.weight" })
        {
            using var scope = NewDisposeScope();
            LoraAdapters.Adapter adapter = model.Lora.All.Single(a => a.WeightName == name);
            Tensor expected = Read(golden, "grad." + name).matmul(adapter.A.detach().t()).mul(model.Lora.Scaling);
            double error = (adapter.B.grad! - expected).abs().max().item<float>() / Math.Max(1.0, expected.abs().max().item<float>());
            Assert.True(error < 1e-4, $"{name}: lora_B gradient off by {error:E2}");
            Assert.Equal(0f, adapter.A.grad!.abs().max().item<float>());
        }
    }

    [Fact]
    public void ALoraRunLeavesTheBaseWeightsAndExportsTheMerge()
    {
        using var dir = new TempDirectory();
        TrainingFixtures.WriteSet(dir.Path);
        string outDir = Path.Combine(dir.Path, "run");
        TrainingResult result = new Trainer(TrainingFixtures.Config(dir.Path, mode: "lora", steps: 4), outDir).Run(resume: false);
        using ITensorSource before = CheckpointOpener.Open(TinyLLark.Directory), after = CheckpointOpener.Open(Path.Combine(result.ModelDirectory!));
        using ITensorSource state = CheckpointOpener.Open(Path.Combine(outDir, "state", "step-00000004", "state.safetensors"));
        int merged = 0;
        foreach (string name in before.Entries.Keys)
        {
            using var scope = NewDisposeScope();
            Tensor a = Read(before, name), b = Read(after, name);
            string loraA = "param." + name.Replace(".weight", ".lora_A.weight", StringComparison.Ordinal);
            if (name.EndsWith(".weight", StringComparison.Ordinal) && state.Entries.ContainsKey(loraA))
            {
                Tensor delta = Read(state, loraA.Replace("lora_A", "lora_B", StringComparison.Ordinal)).matmul(Read(state, loraA)).mul(KeptScalars.Two);
                Assert.True(delta.abs().max().item<float>() > 0, $"{name}: the adapter did not move");
                Assert.True((b - a - delta).abs().max().item<float>() < 1e-6, $"{name}: exported weight is not base + (alpha / r) B A");
                merged++;
            }
            else if (name == "model.embed_tokens.weight")
            {
                Assert.True(a.narrow(0, 0, 1026).eq(b.narrow(0, 0, 1026)).all().item<bool>(), "embedding rows other than the audio ones changed");
            }
            else if (!name.StartsWith("model.mm_projector.", StringComparison.Ordinal))
            {
                Assert.True(a.eq(b).all().item<bool>(), $"{name} changed");
            }
        }
        Assert.Equal(4 * 7, merged);
    }

    [Fact]
    public void ABf16BaseTrainsFloat32AdaptersAndServes()
    {
        using var dir = new TempDirectory();
        TrainingFixtures.WriteSet(dir.Path);
        string outDir = Path.Combine(dir.Path, "run");
        TrainingConfig config = TrainingFixtures.Config(dir.Path, mode: "lora", steps: 12, lr: 3e-3) with { DType = "bf16" };
        TrainingResult result = new Trainer(config, outDir).Run(resume: false);
        var curve = LossHistory.ReadCurves(Path.Combine(outDir, LossHistory.FileName)).Train;
        Assert.True(curve[^1].Loss < curve[0].Loss / 2, $"loss {curve[0].Loss:F3} -> {curve[^1].Loss:F3}");

        using ITensorSource before = CheckpointOpener.Open(TinyLLark.Directory), after = CheckpointOpener.Open(result.ModelDirectory!);
        Assert.Equal(StoredDType.BF16, after.Entries["model.layers.0.input_layernorm.weight"].DType);
        Assert.Equal(StoredDType.F32, after.Entries["model.mm_projector.weight"].DType);
        using (var scope = NewDisposeScope())
        {
            // A frozen weight is the base's, rounded to bf16 once.
            Tensor norm = Read(before, "model.layers.2.post_attention_layernorm.weight").to(ScalarType.BFloat16).to(ScalarType.Float32);
            Assert.True(norm.eq(Read(after, "model.layers.2.post_attention_layernorm.weight")).all().item<bool>());
        }
        Assert.Contains("\"bfloat16\"", File.ReadAllText(Path.Combine(result.ModelDirectory!, "config.json")), StringComparison.Ordinal);
        using var model = LLark.Language.Engine.Multimodal.LLarkModel.Load(result.ModelDirectory!);
        Assert.Equal(TinyLLark.AudioWidth, model.AudioWidth);

        Assert.Equal("dtype", Assert.Throws<TrainingConfigException>(() => (TrainingFixtures.Config(dir.Path) with { DType = "bf16" }).Validate()).Field);
    }
}
