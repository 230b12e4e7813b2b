using Google.Protobuf;
using Grpc.Core;
using LLark.Language.Service;
using LLark.Language.V1;
using LLark.Tests.Checkpoints;
using LLark.Tests.Encoder.Service;
using LLark.Tests.Gateway;
using LLark.Tests.Language.Service;
using LLark.Tests.TestSupport;
using WireFinish = LLark.Language.V1.FinishReason;

namespace LLark.Tests.EndToEnd;

/// <summary>
/// The README's main job as tools/run.sh runs it: the real encoder service on the spectral encoder at the demo
/// LLark's 5 fps, the real language service on the demo LLark, the real gateway; the bundled clip goes in as raw audio
/// through the gateway and the answer streams back.
/// </summary>
public sealed class DemoSystemTests
{
    [Fact]
    public async Task TheMainJobDescribesTheBundledClipFromTheAudio()
    {
        using var cache = new TempDirectory();
        await using LoopbackHost encoder = await EncoderHarness.StartAsync(cache.Path, new Dictionary<string, string?>
        {
            ["LLark:Encoder:ModelPath"] = Path.Combine(RepoPaths.Root, "models", "spectral"),
            ["LLark:Encoder:Fps"] = "5",
        });
        await using LoopbackHost language = await LoopbackHost.StartAsync(LanguageServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = Path.Combine(RepoPaths.Root, "models", "llark-demo"),
            ["LLark:Language:EncoderAddress"] = encoder.GrpcAddress.ToString(),
        })));
        await LanguageServiceTests.WaitServing(language);
        await using LoopbackHost gateway = await LoopbackHost.StartAsync(GatewayTestHost.Build(GatewayTestHost.Destinations(language.GrpcAddress, encoder.GrpcAddress)));

        string clip = Path.Combine(RepoPaths.Root, "models", "clips", "demo-heldout-electric-piano-eb-major.wav");
        var request = new GenerateRequest
        {
            AudioBytes = new LLark.Common.V1.AudioBytes { Data = ByteString.CopyFrom(await File.ReadAllBytesAsync(clip)), Filename = Path.GetFileName(clip) },
            Stopping = new StoppingParameters { MaxNewTokens = 128 },
        };
        request.Turns.Add(new ChatTurn { Human = "Describe this clip: its tempo, key and instruments." });
        using var call = new LanguageService.LanguageServiceClient(gateway.Channel).Generate(request, GatewayTestHost.Bearer(GatewayTestHost.MainKey));
        var text = new System.Text.StringBuilder();
        GenerateFinal? final = null;
        await foreach (GenerateResponse r in call.ResponseStream.ReadAllAsync())
        {
            if (r.FrameCase == GenerateResponse.FrameOneofCase.Final) final = r.Final;
            else text.Append(r.Delta.Text);
        }
        Assert.NotNull(final);
        Assert.Equal(WireFinish.Stop, final.FinishReason);
        Assert.Equal(40u, final.Usage.AudioTokens);  // the whole 8 s clip at 5 fps
        string answer = text.ToString();
        // What the demo gets right on this clip (electric piano lead, Eb major, 138 BPM, 4/4, a synth pad, a synth bass
        // and drums): see tools/demo/README.md. It hears the electric piano but puts a grand piano in the lead, and
        // names bossa nova for the style.
        Assert.Contains("138 BPM in 4/4", answer, StringComparison.Ordinal);
        Assert.Contains("E-flat major", answer, StringComparison.Ordinal);
        Assert.Contains("electric piano", answer, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("drum kit", answer, StringComparison.OrdinalIgnoreCase);
    }
}
