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

    /// <summary>Every value of <paramref name="actual"/> within <paramref name="tolerance"/> of <paramref name="expected"/>, naming the worst one.</summary>
    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what, float tolerance)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {actual.Length} values, expected {expected.Length}");
        float worst = 0;
        int at = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            float d = Math.Abs(expected[i] - actual[i]);
            if (!(d <= worst)) { worst = d; at = i; }
        }
        Assert.True(worst <= tolerance, $"{what}: max |diff| {worst} at {at} (expected {expected[at]}, got {actual[at]})");
    }

    /// <summary>Model folders that hold these reference weights, and the reference set name.</summary>
    public static TheoryData<string, string> Models => new()
    {
        { "llama-mha-fp16", "mha" },
        { "llama-gqa-fp32-sharded", "gqa" },
        { "llama-gqa-bf16", "gqa" },
    };
}
