using System.Text.Json;
using LLark.Data;
using LLark.Tests.TestSupport;
using LLark.Training;

namespace LLark.Tests.Training;

/// <summary>Synthetic data for training runs: random frames per fake clip, and pairs whose answers depend on the clip.</summary>
internal static class TrainingFixtures
{
    public static readonly string[] Answers =
    [
        "The tempo is about 120 BPM.",
        "It is in A minor.",
        "A solo piano plays slowly.",
        "Drums and bass in a fast groove.",
    ];

    /// <summary>
    /// Writes <c>embeddings/</c> (one .npy a clip, <paramref name="frames"/> frames of <paramref name="width"/>) and
    /// <c>pairs.jsonl</c> (each clip asked two questions with the same answer, tasks "caption" and "hear") under <paramref name="dir"/>.
    /// </summary>
    public static void WriteSet(string dir, int clips = 4, int width = TinyLLark.AudioWidth, double fps = TinyLLark.Fps, int frames = 6,
        Func<int, double>? fpsOf = null)
    {
        string set = Path.Combine(dir, "embeddings");
        Directory.CreateDirectory(set);
        var random = new Random(7);
        var entries = new List<EmbeddingEntry>();
        var pairs = new List<InstructionPair>();
        for (int c = 0; c < clips; c++)
        {
            int f = frames + c % 3;
            var data = new float[f * width];
            for (int i = 0; i < data.Length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
            string file = $"clip{c}.npy";
            Npy.WriteFloat32(Path.Combine(set, file), data, f, width);
            entries.Add(new EmbeddingEntry
            {
                ClipId = $"clip{c}", File = file, Frames = f, Width = width, Fps = fpsOf?.Invoke(c) ?? fps, Encoder = "jukebox-tiny", Layer = 2,
            });
            foreach (string q in new[] { "Describe this clip.", "What do you hear?" })
                pairs.Add(new InstructionPair
                {
                    ClipId = $"clip{c}", Family = "captioning", Task = q.StartsWith("Describe", StringComparison.Ordinal) ? "caption" : "hear", Query = q,
                    Response = Answers[c % Answers.Length],
                });
        }
        JsonLines.Write(Path.Combine(set, EmbeddingSet.IndexFile), entries);
        JsonLines.Write(Path.Combine(dir, "pairs.jsonl"), pairs);
    }

    /// <summary>A config over <see cref="WriteSet"/>'s files, continuing from the bundled tiny untrained LLark.</summary>
    public static TrainingConfig Config(string dir, string mode = "full", int steps = 6, int saveEvery = 0, double lr = 1e-3,
        int batch = 4, int accumulation = 1, double warmup = 0.0, double validation = 0.0, double loraDropout = 0.1)
    {
        string json = JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["data"] = new Dictionary<string, object?> { ["pairs"] = "pairs.jsonl", ["embeddings"] = "embeddings", ["validation_fraction"] = validation },
            ["model"] = new Dictionary<string, object?> { ["base"] = TinyLLark.Directory },
            ["mode"] = mode,
            ["lora"] = mode == "lora" ? new Dictionary<string, object?> { ["r"] = 4, ["alpha"] = 8, ["dropout"] = loraDropout } : null,
            ["optimizer"] = new Dictionary<string, object?> { ["lr"] = lr, ["warmup_ratio"] = warmup },
            ["batch_size"] = batch,
            ["grad_accumulation"] = accumulation,
            ["max_length"] = 256,
            ["steps"] = steps,
            ["save_every"] = saveEvery,
            ["seed"] = 3,
            ["audio"] = new Dictionary<string, object?> { ["fps"] = TinyLLark.Fps, ["encoder"] = "jukebox-tiny", ["layer"] = 2 },
        });
        return TrainingConfig.Parse(json, dir);
    }
}
