using System.Text.Json;
using System.Text.Json.Serialization;
using LLark.Checkpoints;
using static TorchSharp.torch;

namespace LLark.Training;

/// <summary>Where a run stands, beside the tensors of its training state.</summary>
public sealed record TrainingProgressState
{
    [JsonPropertyName("format")] public int Format { get; init; } = 1;

    /// <summary>Optimizer steps done.</summary>
    [JsonPropertyName("step")] public int Step { get; init; }

    /// <summary>Micro-batches consumed: the data order's position (the order itself follows from the seed).</summary>
    [JsonPropertyName("micro_batches")] public long MicroBatches { get; init; }

    /// <summary>torch's AdamW state["step"].</summary>
    [JsonPropertyName("optimizer_steps")] public long OptimizerSteps { get; init; }

    [JsonPropertyName("tokens")] public long Tokens { get; init; }

    [JsonPropertyName("elapsed_seconds")] public double ElapsedSeconds { get; init; }

    /// <summary>The config fields a resumption must share (<see cref="TrainingConfig.ResumeFingerprint"/>).</summary>
    [JsonPropertyName("config")] public string Config { get; init; } = "";
}

/// <summary>
/// The training state: every trained tensor and its AdamW moments in one safetensors file, the position in
/// state.json, in <c>DIR/state/step-N/</c>. <c>DIR/state/latest.json</c> names the newest complete one and is
/// replaced by rename only after that folder is whole, so a crash at any moment leaves the previous save usable.
/// </summary>
public static class TrainingState
{
    private const string Latest = "latest.json";

    public static string Folder(string outDir) => Path.Combine(outDir, "state");

    public static void Save(string outDir, TrainingProgressState progress, IReadOnlyList<TrainedTensor> trained, AdamW optimizer)
    {
        string root = Folder(outDir);
        Directory.CreateDirectory(root);
        string name = $"step-{progress.Step:D8}";
        string final = Path.Combine(root, name);
        string partial = final + ".partial";
        if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
        Directory.CreateDirectory(partial);

        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (TrainedTensor t in trained) tensors.Add(new("param." + t.Name, t.Tensor.detach().cpu().contiguous()));
        foreach ((string n, Tensor m, Tensor v) in optimizer.Moments())
        {
            tensors.Add(new("exp_avg." + n, m.cpu().contiguous()));
            tensors.Add(new("exp_avg_sq." + n, v.cpu().contiguous()));
        }
        SafetensorsWriter.Save(Path.Combine(partial, "state.safetensors"), tensors);
        foreach (var t in tensors) t.Value.Dispose();
        File.WriteAllText(Path.Combine(partial, "state.json"), JsonSerializer.Serialize(progress, Indented));
        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        Directory.Move(partial, final);

        string latestTemp = Path.Combine(root, Latest + ".tmp");
        File.WriteAllText(latestTemp, JsonSerializer.Serialize(new LatestPointer(name)));
        File.Move(latestTemp, Path.Combine(root, Latest), overwrite: true);
        foreach (string old in Directory.EnumerateDirectories(root, "step-*"))
        {
            if (Path.GetFileName(old) != name) Directory.Delete(old, recursive: true);
        }
    }

    /// <summary>Reads the newest save into the trained tensors and moments; null when the folder has none.</summary>
    public static TrainingProgressState? Load(string outDir, IReadOnlyList<TrainedTensor> trained, AdamW optimizer)
    {
        string root = Folder(outDir);
        string pointer = Path.Combine(root, Latest);
        if (!File.Exists(pointer)) return null;
        string name = JsonSerializer.Deserialize<LatestPointer>(File.ReadAllText(pointer))!.Folder;
        string folder = Path.Combine(root, name);
        TrainingProgressState progress = JsonSerializer.Deserialize<TrainingProgressState>(File.ReadAllText(Path.Combine(folder, "state.json")))
            ?? throw new InvalidDataException($"{folder}/state.json is empty");
        using ITensorSource source = CheckpointOpener.Open(Path.Combine(folder, "state.safetensors"));
        using var noGrad = no_grad();
        void Read(string key, Tensor into)
        {
            if (!source.Entries.TryGetValue(key, out TensorEntry? entry) || !entry.Shape.SequenceEqual(into.shape))
                throw new InvalidDataException($"{folder}: the saved state has no tensor {key} of shape [{string.Join(", ", into.shape)}]; was it made by another config?");
            using Tensor staged = empty(entry.Shape, dtype: ScalarType.Float32);
            source.ReadInto(key, staged);
            into.copy_(staged);
        }
        foreach (TrainedTensor t in trained) Read("param." + t.Name, t.Tensor);
        foreach ((string n, Tensor m, Tensor v) in optimizer.Moments())
        {
            Read("exp_avg." + n, m);
            Read("exp_avg_sq." + n, v);
        }
        optimizer.StepCount = progress.OptimizerSteps;
        return progress;
    }

    private sealed record LatestPointer([property: JsonPropertyName("folder")] string Folder);

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
}
