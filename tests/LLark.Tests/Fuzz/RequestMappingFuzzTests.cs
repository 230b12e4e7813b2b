using CsCheck;
using Google.Protobuf;
using LLark.Common.V1;
using LLark.Common;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Multimodal;
using LLark.Language.Service;
using ChatTurn = LLark.Language.Engine.Multimodal.ChatTurn;

namespace LLark.Tests.Fuzz;

/// <summary>
/// The language service's proto-to-engine mapping, without a model, on random requests: each step ends in an
/// InvalidRequestException that names a proto field, or in engine options and audio that keep their promises.
/// </summary>
[Trait("Category", FuzzRun.Category)]
public sealed class RequestMappingFuzzTests
{
    private static readonly LanguageServiceOptions Limits = new() { ModelPath = "unused" };

    private static readonly string[] Fields =
        ["turns", "stopping.max_new_tokens", "stopping.stop", "sampling.temperature", "sampling.top_p", "sampling.top_k", "sampling.repetition_penalty"];

    [Fact]
    public void RandomGenerateRequestsMapOrNameTheirField() =>
        FuzzRun.Check(RequestGen.Generate, request =>
        {
            Outcome<IReadOnlyList<ChatTurn>> turns = Bounded.Run(() => RequestMapping.ToTurns(request));
            if (Refused(turns.Error) is null)
                Assert.Equal(request.Turns.Count, turns.Result!.Count);

            Outcome<GenerationOptions> options = Bounded.Run(() => RequestMapping.ToGenerationOptions(request, Limits));
            if (Refused(options.Error) is null)
            {
                GenerationOptions o = options.Result!;
                Assert.InRange(o.MaxNewTokens, 1, Limits.MaxNewTokensLimit);
                Assert.True(o.Sampling.Temperature >= 0 && float.IsFinite(o.Sampling.Temperature), $"temperature {o.Sampling.Temperature}");
                Assert.True(o.Sampling.TopP > 0 && o.Sampling.TopP <= 1, $"top_p {o.Sampling.TopP}");
                Assert.True(o.Sampling.RepetitionPenalty > 0 && float.IsFinite(o.Sampling.RepetitionPenalty), $"repetition_penalty {o.Sampling.RepetitionPenalty}");
                Assert.True(o.Sampling.TopK >= 0, $"top_k {o.Sampling.TopK}");
                Assert.DoesNotContain(o.StopStrings, string.IsNullOrEmpty);
            }
        }, iterations: 400, print: RequestGen.Print);

    [Fact]
    public void RandomEmbeddingFramesMapOrAreRefusedOnFrames() => FuzzRun.Check(RequestGen.Frames, FramesHold, iterations: 400, print: RequestGen.Print);

    [Theory]
    // A float32 NaN.
    [InlineData("""{ "frames": 1, "width": 1, "fps": 25, "data": "AADAfw==" }""")]
    // A bfloat16 infinity.
    [InlineData("""{ "dtype": "FRAME_DTYPE_BFLOAT16", "frames": 1, "width": 2, "fps": 25, "data": "gD+Afw==" }""")]
    public void NonFiniteFrameRegressions(string frames) => FramesHold(JsonParser.Default.Parse<EmbeddingFrames>(frames));

    [Theory]
    [InlineData("""{ "frames": 1, "width": 1, "fps": "Infinity", "data": "AAAAAA==" }""")]
    public void InfiniteFpsRegressions(string frames) => FramesHold(JsonParser.Default.Parse<EmbeddingFrames>(frames));

    private static void FramesHold(EmbeddingFrames frames)
    {
        Outcome<AudioFrames> audio = Bounded.Run(() => RequestMapping.ToAudio(frames));
        if (audio.Error is not null)
        {
            InvalidRequestException refused = Assert.IsType<InvalidRequestException>(audio.Error);
            Assert.StartsWith("frames", refused.Field, StringComparison.Ordinal);
            return;
        }
        AudioFrames a = audio.Result!;
        Assert.True(a.Frames > 0 && a.Width > 0, $"{a.Frames} x {a.Width}");
        Assert.Equal((long)a.Frames * a.Width, a.Data.LongLength);
        if (!double.IsFinite(a.Fps))
            Assert.Fail($"fps {a.Fps} was accepted");
        Assert.True(a.Fps > 0, $"fps {a.Fps}");
        if (!a.Data.All(float.IsFinite))
            Assert.Fail("frames holding NaN or infinity were accepted as audio");
    }

    /// <summary>The refusal, checked to be an InvalidRequestException on a field the request has; null when there was none.</summary>
    private static InvalidRequestException? Refused(Exception? error)
    {
        if (error is null) return null;
        InvalidRequestException refused = Assert.IsType<InvalidRequestException>(error);
        Assert.Contains(refused.Field, Fields);
        Assert.False(string.IsNullOrWhiteSpace(refused.Message));
        return refused;
    }
}
