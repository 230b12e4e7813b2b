using LLark.Checkpoints;
using TorchSharp;
using static LLark.Tests.Checkpoints.CheckpointFixtures;

namespace LLark.Tests.Checkpoints;

/// <summary>
/// load_state_dict(strict=True) semantics: a missing, extra or mis-shaped tensor fails before anything is written,
/// naming every offender and the checkpoint.
/// </summary>
public sealed class StrictLoaderTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    /// <summary>A "model": zeroed float32 tensors with the names and shapes of the gqa checkpoint.</summary>
    private static Dictionary<string, torch.Tensor> Model()
    {
        using var file = new SafetensorsFile(GqaBf16);
        return file.Entries.Values.ToDictionary(e => e.Name, e => torch.zeros(e.Shape));
    }

    /// <summary>The gqa bf16 weights, changed by <paramref name="edit"/>, written to a temporary safetensors file.</summary>
    private string Edited(Action<List<(string Name, torch.Tensor Tensor)>> edit)
    {
        List<(string, torch.Tensor)> tensors;
        using (var file = new SafetensorsFile(GqaBf16))
            tensors = [.. ReadAll(file).Select(p => (p.Key, p.Value))];
        edit(tensors);
        string path = dir.File("edited.safetensors");
        WriteSafetensors(path, tensors);
        return path;
    }

    private static CheckpointException LoadFails(IReadOnlyDictionary<string, torch.Tensor> model, ITensorSource source, params string[] expected)
    {
        var e = Assert.Throws<CheckpointException>(() => StrictLoader.Load(model, source));
        foreach (string part in expected)
            Assert.Contains(part, e.Message, StringComparison.Ordinal);
        return e;
    }

    private static void AssertUntouched(Dictionary<string, torch.Tensor> model) =>
        Assert.All(model, p => Assert.Equal(0, p.Value.count_nonzero().item<long>()));

    [Fact]
    public void LoadsEveryTensorInFileOrderAndReportsProgress()
    {
        using var scope = torch.NewDisposeScope();
        var model = Model();
        var reports = new List<LoadProgress>();
        using var source = new SafetensorsFile(GqaBf16);
        StrictLoader.Load(model, source, progress: new Synchronous<LoadProgress>(reports.Add));

        Assert.Equal(source.Entries.Keys, reports.Select(r => r.CurrentName));
        Assert.Equal(Enumerable.Range(1, 30), reports.Select(r => r.TensorsDone));
        Assert.All(reports, r => Assert.Equal((30, 1263360L), (r.TensorsTotal, r.BytesTotal)));
        Assert.Equal(1263360L, reports[^1].BytesDone);
        var reference = ReadAll(source, torch.ScalarType.Float32);
        foreach (var (name, tensor) in model)
            AssertBitwiseEqual(reference[name], tensor, name);
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        using var scope = torch.NewDisposeScope();
        var model = Model();
        using var source = new SafetensorsFile(Edited(t => t.RemoveAll(p => p.Name == "model.layers.1.mlp.up_proj.weight")));
        LoadFails(model, source, $"Checkpoint {source.Path} does not fit the model.", "1 missing from the checkpoint: model.layers.1.mlp.up_proj.weight.");
        AssertUntouched(model);
    }

    [Fact]
    public void ExtraTensorIsNamedUnlessIgnored()
    {
        using var scope = torch.NewDisposeScope();
        var model = Model();
        using var source = new SafetensorsFile(Edited(t => t.Add(("model.layers.0.self_attn.rotary_emb.inv_freq", torch.ones(8)))));
        var e = LoadFails(model, source, source.Path, "1 unexpected in the checkpoint: model.layers.0.self_attn.rotary_emb.inv_freq.");
        Assert.DoesNotContain("missing", e.Message, StringComparison.Ordinal);
        AssertUntouched(model);

        StrictLoader.Load(model, source, ignoreExtra: n => n.EndsWith(".inv_freq", StringComparison.Ordinal));
        Assert.NotEqual(0, model["lm_head.weight"].count_nonzero().item<long>());
    }

    [Fact]
    public void MisShapedTensorIsNamedWithBothShapes()
    {
        using var scope = torch.NewDisposeScope();
        var model = Model();
        using var source = new SafetensorsFile(Edited(t =>
        {
            int i = t.FindIndex(p => p.Name == "model.layers.2.self_attn.k_proj.weight");
            t[i] = (t[i].Name, t[i].Tensor.narrow(0, 0, 32).contiguous());
        }));
        LoadFails(model, source, source.Path, "1 with mismatched shapes: model.layers.2.self_attn.k_proj.weight (model [64, 128], checkpoint [32, 128]).");
        AssertUntouched(model);
    }

    [Fact]
    public void EveryKindOfMismatchIsReportedAtOnce()
    {
        using var scope = torch.NewDisposeScope();
        var model = Model();
        model["extra.model.tensor"] = torch.zeros(3);
        using var source = new SafetensorsFile(Edited(t =>
        {
            t.RemoveAll(p => p.Name == "model.norm.weight");
            t.Add(("stray", torch.zeros(1)));
            int i = t.FindIndex(p => p.Name == "lm_head.weight");
            t[i] = (t[i].Name, t[i].Tensor.t().contiguous());
        }));
        LoadFails(model, source,
            "2 missing from the checkpoint: extra.model.tensor, model.norm.weight. ",
            "1 unexpected in the checkpoint: stray. ",
            "1 with mismatched shapes: lm_head.weight (model [1024, 128], checkpoint [128, 1024]).");
        AssertUntouched(model);
    }

    [Fact]
    public void LongListsAreSummarized()
    {
        using var scope = torch.NewDisposeScope();
        var model = Model();
        for (int i = 0; i < 25; i++)
            model[$"missing.{i:D2}"] = torch.zeros(1);
        using var source = new SafetensorsFile(GqaBf16);
        LoadFails(model, source, "25 missing from the checkpoint: missing.00, missing.01,", "missing.19, and 5 more.");
    }

    [Fact]
    public void ShardedCheckpointIsNamedByFolder()
    {
        using var scope = torch.NewDisposeScope();
        var model = Model();
        model.Remove("lm_head.weight");
        using var source = new ShardedTensorSource(GqaFp32Index);
        LoadFails(model, source, $"Checkpoint {Path.GetDirectoryName(GqaFp32Index)} (2 files) does not fit the model.", "1 unexpected in the checkpoint: lm_head.weight.");
    }

    [Fact]
    public void DtypeOfTheModelIsKept()
    {
        using var scope = torch.NewDisposeScope();
        using var source = new SafetensorsFile(GqaBf16);
        var model = source.Entries.Values.ToDictionary(e => e.Name, e => torch.zeros(e.Shape, dtype: torch.ScalarType.BFloat16));
        StrictLoader.Load(model, source);
        var reference = ReadAll(source);
        foreach (var (name, tensor) in model)
            AssertBitwiseEqual(reference[name], tensor, name);
    }

    [Fact]
    public void CancelledLoadStops()
    {
        using var scope = torch.NewDisposeScope();
        var model = Model();
        using var source = new SafetensorsFile(GqaBf16);
        using var cts = new CancellationTokenSource();
        int seen = 0;
        var progress = new Synchronous<LoadProgress>(_ =>
        {
            if (++seen == 3)
                cts.Cancel();
        });
        Assert.ThrowsAny<OperationCanceledException>(() => StrictLoader.Load(model, source, progress: progress, ct: cts.Token));
        Assert.Equal(3, seen);
    }

    /// <summary>Reports on the calling thread, unlike <see cref="Progress{T}"/>.</summary>
    private sealed class Synchronous<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
