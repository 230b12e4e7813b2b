using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Multimodal;
using LLark.Language.Service;
using LLark.Language.V1;

namespace LLark.Tests.Language.Service;

/// <summary>How a request's stopping settings become the engine's.</summary>
public sealed class RequestMappingTests
{
    private static GenerationOptions Map(StoppingParameters stopping) =>
        RequestMapping.ToGenerationOptions(new GenerateRequest { Stopping = stopping }, new LanguageServiceOptions { ModelPath = "unused" });

    [Fact]
    public void TheTurnMarkerStopsAnAnswerUnlessIgnoreEosAsksForTheFullLength()
    {
        var normal = new StoppingParameters { MaxNewTokens = 9 };
        normal.Stop.Add("END");
        GenerationOptions answer = Map(normal);
        Assert.Equal([LLarkPrompt.StopString, "END"], answer.StopStrings);
        Assert.True(answer.StopOnEos);

        var fixedLength = new StoppingParameters { MaxNewTokens = 9, IgnoreEos = true };
        fixedLength.Stop.Add("END");
        GenerationOptions bench = Map(fixedLength);
        // The request's own stop strings still apply; EOS and "###" do not.
        Assert.Equal(["END"], bench.StopStrings);
        Assert.False(bench.StopOnEos);
        Assert.Equal(9, bench.MaxNewTokens);
    }
}
