using LLark.Tests.Checkpoints;

namespace LLark.Tests.TestSupport;

public sealed class TinyLLarkTests
{
    [Fact]
    public void TheBundledUntrainedModelIsWhatTheRecipeMakes()
    {
        using var dir = new TempDirectory();
        TinyLLark.Create(dir.Path);
        foreach (string name in new[] { "config.json", "model.safetensors", "tokenizer.model" })
            Assert.True(File.ReadAllBytes(Path.Combine(dir.Path, name)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(TinyLLark.Directory, name))),
                $"{name} differs from models/llark-tiny-untrained/{name}");
    }
}
