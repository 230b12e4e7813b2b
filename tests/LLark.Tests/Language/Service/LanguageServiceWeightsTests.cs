using LLark.Language.Service;
using LLark.Language.V1;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Language.Service;

/// <summary>The <c>Weights</c> setting: the service packs the model at load, says so, and answers; bad values stop the start.</summary>
public sealed class LanguageServiceWeightsTests
{
    [Theory]
    [InlineData("bf16")]
    [InlineData("int8")]
    public async Task APackedModelReportsItsFormatAndAnswers(string weights)
    {
        await using LoopbackHost host = await LoopbackHost.StartAsync(LanguageServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = TinyLLark.Directory,
            ["LLark:Language:Weights"] = weights,
        })));
        await LanguageServiceTests.WaitServing(host);
        var client = new LanguageService.LanguageServiceClient(host.Channel);
        ModelInfo info = await client.GetModelInfoAsync(new GetModelInfoRequest());
        Assert.Equal(weights, info.Weights);
        Assert.Equal("float32", info.Dtype);
        var request = new GenerateRequest { Frames = LanguageServiceTests.Frames(9), Stopping = new StoppingParameters { MaxNewTokens = 5, IgnoreEos = true } };
        request.Turns.Add(new ChatTurn { Human = "Describe this clip." });
        Assert.Equal(5u, (await LanguageServiceTests.Run(client, request)).Final.Usage.GeneratedTokens);
    }

    [Theory]
    [InlineData("int4", "", "is not fp32, bf16 or int8")]
    [InlineData("int8", "bf16", "need DType fp32 and Device cpu")]
    public async Task AFormatTheKernelsCannotRunIsRefusedAtStart(string weights, string dtype, string expected)
    {
        var settings = new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = TinyLLark.Directory,
            ["LLark:Language:Weights"] = weights,
        };
        if (dtype.Length > 0) settings["LLark:Language:DType"] = dtype;
        await using Microsoft.AspNetCore.Builder.WebApplication app = LanguageServiceHost.Build([], LoopbackHost.Settings(settings));
        var e = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => app.StartAsync());
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Contains("Weights", e.Message, StringComparison.Ordinal);
    }
}
