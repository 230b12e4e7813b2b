using System.Text.Json;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Language.Engine.Model;

/// <summary>The golden outputs of the original implementations for one tiny model (reference/&lt;name&gt;.json).</summary>
internal sealed class LlamaReference
{
    private readonly JsonElement root;

    public LlamaReference(string name)
    {
        Name = name;
        root = JsonDocument.Parse(File.ReadAllText(RepoPaths.Fixture("llama-tiny", "reference", name + ".json"))).RootElement;
    }

    public string Name { get; }

    public IEnumerable<JsonElement> Prompts => root.GetProperty("prompts").EnumerateArray();

    public JsonElement Prompt(string name) => Prompts.Single(p => p.GetProperty("name").GetString() == name);

    public JsonElement Section(string name) => root.GetProperty(name);

    public static (float[] Data, long[] Shape) Array(string file) => LLark.Data.Npy.ReadFloat32(RepoPaths.Fixture("llama-tiny", "reference", file));

    public static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    public static float[] Floats(JsonElement e) => e.EnumerateArray().Select(x => x.GetSingle()).ToArray();

    /// <summary>Model folders that hold these reference weights, and the reference set name.</summary>
    public static TheoryData<string, string> Models => new()
    {
        { "llama-mha-fp16", "mha" },
        { "llama-gqa-fp32-sharded", "gqa" },
        { "llama-gqa-bf16", "gqa" },
    };
}
