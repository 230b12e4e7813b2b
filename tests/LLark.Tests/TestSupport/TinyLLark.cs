using LLark.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Tests.TestSupport;

/// <summary>
/// The recipe of <c>models/llark-tiny-untrained</c>: a tiny LLark checkpoint made from the mha fixture: four added-token rows in the embeddings and head, a random
/// projector from <see cref="AudioWidth"/>-wide frames, and the LLark keys in config.json. Untrained, so its answers
/// are noise; the machinery around it is what the tests exercise.
/// </summary>
internal static class TinyLLark
{
    public const int AudioWidth = 48;
    public const double Fps = 25;

    // Kept for the process: a temporary Scalar can be finalized during the native call (see KeptScalars).
    private static readonly Scalar AddedRowScale = 0.02.ToScalar(), ProjectorWeightScale = 0.1.ToScalar(), ProjectorBiasScale = 0.01.ToScalar();

    /// <summary>The committed copy, <c>models/llark-tiny-untrained</c>, which the tests and the micro pipeline run.</summary>
    public static string Directory { get; } = Path.Combine(RepoPaths.Root, "models", "llark-tiny-untrained");

    public static void Create(string dir)
    {
        System.IO.Directory.CreateDirectory(dir);
        string source = RepoPaths.Fixture("llama-tiny", "llama-mha-fp16");
        File.Copy(Path.Combine(source, "tokenizer.model"), Path.Combine(dir, "tokenizer.model"), overwrite: true);
        string config = File.ReadAllText(Path.Combine(source, "config.json"))
            .Replace("\"vocab_size\": 1024", "\"vocab_size\": 1028", StringComparison.Ordinal)
            .Replace("\"torch_dtype\": \"float16\"", "\"torch_dtype\": \"float32\"", StringComparison.Ordinal)
            .TrimEnd().TrimEnd('}').TrimEnd() + $",\n  \"mm_hidden_size\": {AudioWidth},\n  \"mm_audio_fps\": {Fps}\n}}\n";
        File.WriteAllText(Path.Combine(dir, "config.json"), config);

        using var scope = NewDisposeScope();
        var generator = new Generator(4242);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using (ITensorSource weights = CheckpointOpener.Open(Path.Combine(source, "model.safetensors")))
        {
            foreach (TensorEntry entry in weights.Entries.Values)
            {
                Tensor t = empty(entry.Shape, dtype: ScalarType.Float32);
                weights.ReadInto(entry.Name, t);
                if (entry.Name is "model.embed_tokens.weight" or "lm_head.weight")
                    t = cat([t, randn([4, entry.Shape[1]], generator: generator).mul_(AddedRowScale)], 0);
                tensors.Add(new(entry.Name, t));
            }
        }
        long hidden = tensors.Single(t => t.Key == "model.norm.weight").Value.shape[0];
        tensors.Add(new("model.mm_projector.weight", randn([hidden, AudioWidth], generator: generator).mul_(ProjectorWeightScale)));
        tensors.Add(new("model.mm_projector.bias", randn([hidden], generator: generator).mul_(ProjectorBiasScale)));
        SafetensorsWriter.Save(Path.Combine(dir, "model.safetensors"), tensors);
    }
}
