using System.Text.Json;
using LLark.Common.V1;
using LLark.Language.V1;
using LLark.Tests.Language.Service;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Cli;

/// <summary><c>llark ask --embedding</c> and <c>llark info</c> as processes against a language service on loopback.</summary>
public sealed class ClientCommandTests(LanguageServiceFixture fixture) : IClassFixture<LanguageServiceFixture>
{
    [Fact]
    public async Task AskWithAnEmbeddingIdStreamsTheServersAnswer()
    {
        EmbeddingFrames frames = LanguageServiceTests.Frames(6, seed: 31);
        fixture.Encoder.Embeddings["cli-clip"] = (EmbeddingFramesCodec.Decode(frames), TinyLLark.AudioWidth, TinyLLark.Fps);
        var request = new GenerateRequest { EmbeddingId = "cli-clip", Stopping = new StoppingParameters { MaxNewTokens = 20 } };
        request.Turns.Add(new ChatTurn { Human = "What instruments do you hear?" });
        var (_, expected) = await LanguageServiceTests.Run(fixture.Client, request);

        var output = LlarkProcess.Run("ask", "--embedding", "cli-clip", "--max-new-tokens", "20", "--address", fixture.Host.GrpcAddress.ToString(),
            "What instruments do you hear?");
        Assert.True(output.ExitCode == 0, output.Stderr);
        Assert.Equal(expected.Text + "\n", output.Stdout);

        var missing = LlarkProcess.Run("ask", "--embedding", "nope", "--address", fixture.Host.GrpcAddress.ToString(), "Hi?");
        Assert.Equal(2, missing.ExitCode);
        Assert.StartsWith("error: NotFound:", missing.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void InfoPrintsTheModelInfoAsJson()
    {
        var output = LlarkProcess.Run("info", "--address", fixture.Host.GrpcAddress.ToString());
        Assert.True(output.ExitCode == 0, output.Stderr);
        JsonElement info = JsonDocument.Parse(output.Stdout).RootElement;
        Assert.Equal(TinyLLark.AudioWidth, info.GetProperty("audioEmbeddingWidth").GetInt32());
        Assert.Equal(25, info.GetProperty("audioFps").GetDouble());
    }

    [Fact]
    public void AnUnreachableServerGivesExitCodeFive()
    {
        var output = LlarkProcess.Run("info", "--address", "http://127.0.0.1:9");
        Assert.Equal(5, output.ExitCode);
        Assert.StartsWith("error: Unavailable:", output.Stderr, StringComparison.Ordinal);
    }
}
