using LLark.Checkpoints;
using TorchSharp;

namespace LLark.Tests.Checkpoints;

/// <summary>The one dtype parser: spellings, each caller's allowed set, and the message that lists it.</summary>
public sealed class RunTimeDTypesTests
{
    [Theory]
    [InlineData("fp32", torch.ScalarType.Float32)]
    [InlineData(" Float32 ", torch.ScalarType.Float32)]
    [InlineData("half", torch.ScalarType.Float16)]
    [InlineData("BF16", torch.ScalarType.BFloat16)]
    [InlineData("bfloat16", torch.ScalarType.BFloat16)]
    public void ReadsEverySpelling(string name, torch.ScalarType expected) =>
        Assert.Equal(expected, RunTimeDTypes.Parse(name, RunTimeDTypes.Language));

    [Fact]
    public void RefusesWhatTheCallerDoesNotRunInNamingWhatItDoes()
    {
        Assert.Null(RunTimeDTypes.TryParse("fp16", RunTimeDTypes.Encoder));
        Assert.Null(RunTimeDTypes.TryParse("int8", RunTimeDTypes.Language));
        Assert.Null(RunTimeDTypes.TryParse(null, RunTimeDTypes.Language));
        var e = Assert.Throws<ArgumentException>(() => RunTimeDTypes.Parse("fp16", RunTimeDTypes.Encoder));
        Assert.Contains("'fp16' (expected fp32 or bf16)", e.Message, StringComparison.Ordinal);
        Assert.Equal("fp32, fp16 or bf16", RunTimeDTypes.Expected(RunTimeDTypes.Language));
        Assert.Equal("bf16", RunTimeDTypes.ShortName(torch.ScalarType.BFloat16));
    }
}
