using System.Text.Json;
using LLark.Checkpoints;
using LLark.Tests.Checkpoints;
using LLark.Tests.TestSupport;
using LLark.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Tests.Training;

/// <summary>
/// The training step against tests/fixtures/training (a plain-torch reference of the Hugging Face Llama forward and
/// LLark's splice, checked there against the llama-tiny goldens): loss, gradients, AdamW with clipping, the schedule.
/// </summary>
public sealed class TrainingGoldenTests
{
    private static string Fixture(string name) => RepoPaths.Fixture("training", name);

    private static Tensor Read(ITensorSource source, string name)
    {
        TensorEntry entry = source.Entries[name];
        Tensor t = empty(entry.Shape, dtype: entry.DType == StoredDType.I64 ? ScalarType.Int64 : ScalarType.Float32);
        source.ReadInto(name, t);
        return t;
    }

    /// <summary>max |a - b| / max(1, max |b|): gradients span orders of magnitude, so the scale is the reference's.</summary>
    private static double RelativeError(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        Assert.Equal(expected.shape, actual.shape);
        double diff = (actual.detach().cpu() - expected).abs().max().item<float>();
        return diff / Math.Max(1.0, expected.abs().max().item<float>());
    }

    /// <summary>A chosen checkpoint name's slice of the tensor that holds it (q/k/v and gate/up are rows of fused tensors).</summary>
    internal static Tensor Slice(TrainableLLark model, string name, Func<Tensor, Tensor> of)
    {
        var c = model.Llama.Config;
        long q = c.NumAttentionHeads * (long)c.HeadDim, kv = c.KeyValueHeads * (long)c.HeadDim, ffn = c.IntermediateSize;
        (string fused, long start, long rows) = name switch
        {
            _ when name.EndsWith("self_attn.q_proj.weight", StringComparison.Ordinal) => (name.Replace("q_proj", "qkv_proj", StringComparison.Ordinal), 0L, q),
            _ when name.EndsWith("self_attn.k_proj.weight", StringComparison.Ordinal) => (name.Replace("k_proj", "qkv_proj", StringComparison.Ordinal), q, kv),
            _ when name.EndsWith("self_attn.v_proj.weight", StringComparison.Ordinal) => (name.Replace("v_proj", "qkv_proj", StringComparison.Ordinal), q + kv, kv),
            _ when name.EndsWith("mlp.gate_proj.weight", StringComparison.Ordinal) => (name.Replace("gate_proj", "gate_up_proj", StringComparison.Ordinal), 0L, ffn),
            _ when name.EndsWith("mlp.up_proj.weight", StringComparison.Ordinal) => (name.Replace("up_proj", "gate_up_proj", StringComparison.Ordinal), ffn, ffn),
            _ => (name == "audio_rows" ? TrainableLLark.AudioRowsName : name, 0L, -1L),
        };
        Tensor t = of(model.Trained.Single(p => p.Name == fused).Tensor);
        return rows < 0 ? t : t.narrow(0, start, rows);
    }

    private static TrainingBatch GoldenBatch(ITensorSource golden)
    {
        using Tensor ids = Read(golden, "input.ids"), labels = Read(golden, "input.labels");
        using Tensor f0 = Read(golden, "input.frames.0"), f1 = Read(golden, "input.frames.1");
        using Tensor frames = cat([f0, f1], 0);
        long[] idData = ids.data<long>().ToArray();
        return new TrainingBatch(idData, labels.data<long>().ToArray(), (int)ids.shape[0], (int)ids.shape[1], frames.data<float>().ToArray(),
            (int)frames.shape[0], idData.Count(i => i != 1024));
    }

    [Fact]
    public void LossGradientsAndTwoAdamWStepsMatchTheTorchReference()
    {
        using var dir = new TempDirectory();
        using JsonDocument meta = JsonDocument.Parse(File.ReadAllText(Fixture("tiny_full_two_steps.json")));
        JsonElement hp = meta.RootElement.GetProperty("optimizer");
        string[] chosen = [.. meta.RootElement.GetProperty("chosen").EnumerateArray().Select(e => e.GetString()!)];
        using ITensorSource golden = CheckpointOpener.Open(Fixture("tiny_full_two_steps.safetensors"));
        TrainingBatch batch = GoldenBatch(golden);

        using TrainableLLark model = TrainableLLark.Create(TrainingFixtures.Config(dir.Path), new AudioFormat(TinyLLark.AudioWidth, TinyLLark.Fps, null, null));
        Assert.Equal([1024, 1025, 1026, 1027], new[] { model.PadId, model.PatchId, model.StartId, model.EndId });
        using Tensor headBefore = model.Llama.CheckpointParameters()["lm_head.weight"].clone();
        using Tensor embedBefore = model.Llama.EmbeddingWeight.clone();
        using var optimizer = new AdamW(model.Trained, hp.GetProperty("betas")[0].GetDouble(), hp.GetProperty("betas")[1].GetDouble(),
            hp.GetProperty("eps").GetDouble(), hp.GetProperty("weight_decay").GetDouble());

        var report = new List<string>();
        for (int step = 0; step < 2; step++)
        {
            using (var scope = NewDisposeScope())
            {
                Tensor loss = model.Loss(batch);
                double expectedLoss = Read(golden, $"loss.{step}").item<float>();
                Assert.True(Math.Abs(loss.item<float>() - expectedLoss) < 1e-4, $"step {step}: loss {loss.item<float>()} vs {expectedLoss}");
                loss.backward();
            }
            if (step == 0)
            {
                foreach (string name in chosen)
                {
                    using var scope = NewDisposeScope();
                    double error = RelativeError(Slice(model, name, t => t.grad!), Read(golden, "grad." + name));
                    report.Add($"grad {name}: {error:E2}");
                    Assert.True(error < 1e-4, $"gradient of {name} is off by {error:E2} (relative to its largest element)");
                }
            }
            double norm = Gradients.ClipNorm(model.Trained, hp.GetProperty("max_grad_norm").GetDouble());
            double expectedNorm = meta.RootElement.GetProperty("steps")[step].GetProperty("grad_norm_before_clip").GetDouble();
            Assert.True(Math.Abs(norm - expectedNorm) < 1e-4 * expectedNorm, $"step {step}: grad norm {norm} vs {expectedNorm}");
            optimizer.Step(hp.GetProperty("lr").GetDouble());
            Gradients.Zero(model.Trained);
            foreach (string name in chosen)
            {
                using var scope = NewDisposeScope();
                double error = RelativeError(Slice(model, name, t => t), Read(golden, $"after.{step}.{name}"));
                report.Add($"after step {step + 1} {name}: {error:E2}");
                // Adam's first steps are nearly lr * sign(g): where |g| is near eps, a 1e-9 difference in a gradient
                // (fp32 summation order) moves the update by lr * 1e-9 / (4 eps) = 2.5e-5. Identical gradients give
                // identical parameters (AdamWWithClippingMatchesTorchOptimAdamW), so this bound is about the gradients.
                Assert.True(error < 1e-4, $"{name} after step {step + 1} is off by {error:E2}");
            }
        }
        // Frozen: lm_head and every embedding row, bit for bit (the audio rows are a tensor of their own until export).
        Assert.True(headBefore.eq(model.Llama.CheckpointParameters()["lm_head.weight"]).all().item<bool>());
        Assert.True(embedBefore.eq(model.Llama.EmbeddingWeight).all().item<bool>());
        Console.WriteLine(string.Join("\n", report));
    }

    [Theory]
    [InlineData("mha", "llama-mha-fp16")]
    [InlineData("gqa", "llama-gqa-fp32-sharded")]
    public void TheTrainingForwardReproducesTheReferenceLogits(string name, string folder)
    {
        using JsonDocument meta = JsonDocument.Parse(File.ReadAllText(RepoPaths.Fixture("llama-tiny", "reference", name + ".json")));
        long[] ids = [.. meta.RootElement.GetProperty("prompts").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "license_long")
            .GetProperty("ids").EnumerateArray().Select(e => e.GetInt64())];
        (float[] expected, long[] shape) = LLark.Data.Npy.ReadFloat32(RepoPaths.Fixture("llama-tiny", "reference", $"{name}_logits_all_license_long.npy"));
        using var llama = LLark.Language.Engine.Model.LlamaLoader.Load(RepoPaths.Fixture("llama-tiny", folder));
        using var scope = NewDisposeScope();
        // Embeddings that need a gradient put the whole forward on the autograd path (no in-place shortcuts, no decode kernel).
        Tensor embeds = llama.Embed(tensor(ids).unsqueeze(0)).detach().requires_grad_(true);
        Tensor logits = llama.ForwardTraining(embeds, arange(ids.Length, dtype: ScalarType.Int64));
        Assert.True(logits.requires_grad);
        double diff = (logits.detach() - tensor(expected).view(shape)).abs().max().item<float>();
        Console.WriteLine($"{name}: training forward vs reference logits, max abs diff {diff:E2}");
        Assert.True(diff < 1e-4, $"{name}: logits differ by {diff:E2}");
    }

    [Fact]
    public void AdamWWithClippingMatchesTorchOptimAdamW()
    {
        using JsonDocument meta = JsonDocument.Parse(File.ReadAllText(Fixture("adamw_steps.json")));
        JsonElement hp = meta.RootElement.GetProperty("hyperparameters");
        using ITensorSource golden = CheckpointOpener.Open(Fixture("adamw_steps.safetensors"));
        string[] names = [.. meta.RootElement.GetProperty("tensors").EnumerateArray().Select(e => e.GetString()!)];
        var trained = names.Select(n => new TrainedTensor(n, Read(golden, "init." + n).requires_grad_(true))).ToList();
        using var optimizer = new AdamW(trained, hp.GetProperty("betas")[0].GetDouble(), hp.GetProperty("betas")[1].GetDouble(),
            hp.GetProperty("eps").GetDouble(), hp.GetProperty("weight_decay").GetDouble());
        double[] lrs = [.. meta.RootElement.GetProperty("lr_per_step").EnumerateArray().Select(e => e.GetDouble())];
        double worst = 0;
        for (int step = 0; step < lrs.Length; step++)
        {
            foreach (TrainedTensor t in trained)
            {
                using Tensor g = Read(golden, $"grad.{step}.{t.Name}");
                // A backward of sum(p * g) leaves exactly g in p.grad.
                using Tensor s = t.Tensor.mul(g).sum();
                s.backward();
            }
            double norm = Gradients.ClipNorm(trained, hp.GetProperty("max_grad_norm").GetDouble());
            Assert.Equal(meta.RootElement.GetProperty("grad_norm_before_clip")[step].GetDouble(), norm, 5);
            optimizer.Step(lrs[step]);
            Gradients.Zero(trained);
            var moments = optimizer.Moments().ToDictionary(m => m.Name);
            foreach (TrainedTensor t in trained)
            {
                using var scope = NewDisposeScope();
                worst = Math.Max(worst, (t.Tensor.detach() - Read(golden, $"after.{step}.{t.Name}")).abs().max().item<float>());
                worst = Math.Max(worst, (moments[t.Name].ExpAvg - Read(golden, $"exp_avg.{step}.{t.Name}")).abs().max().item<float>());
                worst = Math.Max(worst, (moments[t.Name].ExpAvgSq - Read(golden, $"exp_avg_sq.{step}.{t.Name}")).abs().max().item<float>());
            }
        }
        Console.WriteLine($"AdamW worst abs difference: {worst:E2}");
        Assert.True(worst < 1e-6, $"parameters or moments differ by {worst:E2}");
        Assert.Equal(lrs.Length, optimizer.StepCount);
    }

    [Fact]
    public void CosineScheduleMatchesTransformers()
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(Fixture("lr_schedule.json")));
        foreach (JsonElement s in doc.RootElement.GetProperty("schedules").EnumerateArray())
        {
            var schedule = CosineSchedule.FromRatio(s.GetProperty("lr").GetDouble(), s.GetProperty("total_steps").GetInt32(), s.GetProperty("warmup_ratio").GetDouble());
            Assert.Equal(s.GetProperty("warmup_steps").GetInt32(), schedule.WarmupSteps);
            double[] expected = [.. s.GetProperty("lr_at_step").EnumerateArray().Select(e => e.GetDouble())];
            for (int step = 0; step < expected.Length; step++)
                Assert.True(Math.Abs(schedule.At(step) - expected[step]) <= 1e-15 * s.GetProperty("lr").GetDouble() * 10, $"step {step}: {schedule.At(step)} vs {expected[step]}");
        }
    }
}
