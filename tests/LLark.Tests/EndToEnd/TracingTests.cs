using System.Collections.Concurrent;
using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using LLark.Language.Service;
using LLark.Language.V1;
using LLark.Tests.Checkpoints;
using LLark.Tests.Encoder.Service;
using LLark.Tests.Gateway;
using LLark.Tests.Language.Service;
using LLark.Tests.TestSupport;

namespace LLark.Tests.EndToEnd;

/// <summary>
/// One request is one trace: a clip's bytes sent to the gateway's Generate reach the language service, which calls the
/// encoder, and every span (the three servers' calls, the encoder's encode, the scheduler's queue wait, prefill and
/// decode) carries the trace id the gateway's span started, through the W3C traceparent the gRPC calls send.
/// The spans are read with an ActivityListener, as an in-memory exporter would see them.
/// </summary>
public sealed class TracingTests
{
    private static readonly ActivitySource Client = new("LLark.Tests.Tracing");

    [Fact]
    public async Task OneRequestIsOneTraceAcrossTheThreeServices()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is "Microsoft.AspNetCore" or "System.Net.Http" or "LLark.Language" or "LLark.Encoder" or "LLark.Tests.Tracing",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);

        using var cache = new TempDirectory();
        await using LoopbackHost encoder = await EncoderHarness.StartAsync(cache.Path, new Dictionary<string, string?>
        {
            ["LLark:Encoder:ModelPath"] = Path.Combine(RepoPaths.Root, "models", "jukebox-tiny"),
        });
        await using LoopbackHost language = await LoopbackHost.StartAsync(LanguageServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = TinyLLark.Directory,
            ["LLark:Language:EncoderAddress"] = encoder.GrpcAddress.ToString(),
        })));
        await LanguageServiceTests.WaitServing(language);
        await using LoopbackHost gateway = await LoopbackHost.StartAsync(GatewayTestHost.Build(GatewayTestHost.Destinations(language.GrpcAddress, encoder.GrpcAddress)));

        string clip = Path.Combine(RepoPaths.Root, "models", "clips", "tiny-test-4s.wav");
        var request = new GenerateRequest
        {
            AudioBytes = new LLark.Common.V1.AudioBytes { Data = ByteString.CopyFrom(await File.ReadAllBytesAsync(clip)), Filename = "tiny-test-4s.wav" },
            Stopping = new StoppingParameters { MaxNewTokens = 4 },
        };
        request.Turns.Add(new ChatTurn { Human = "Describe this clip." });
        // The test's own root span names the trace: other tests in this process make spans of their own meanwhile.
        ActivityTraceId traceId;
        using (Activity root = Client.StartActivity("client")!)
        {
            traceId = root.TraceId;
            using var call = new LanguageService.LanguageServiceClient(gateway.Channel).Generate(request, GatewayTestHost.Bearer(GatewayTestHost.MainKey));
            await foreach (GenerateResponse _ in call.ResponseStream.ReadAllAsync()) { }
        }

        // The chain of server spans: the gateway's call (under the test's client call), the language
        // service's call under it, the encoder's call under that; each host's own spans under its call.
        Activity[] trace = [.. spans.Where(s => s.TraceId == traceId)];
        Activity prefill = Assert.Single(trace, s => s.OperationName == "prefill");
        // The nearest server span above a span (the HTTP client spans of the calls between hosts sit between them).
        // In one process a span also knows its parent object, which covers the gRPC client's own activity (a
        // DiagnosticSource one, which no ActivityListener sees).
        Activity Parent(Activity s)
        {
            Activity p = s.Parent ?? trace.Single(p => p.SpanId == s.ParentSpanId);
            return p.Source.Name == "Microsoft.AspNetCore" ? p : Parent(p);
        }
        Activity languageCall = Parent(prefill);
        Assert.Equal("Microsoft.AspNetCore", languageCall.Source.Name);
        Activity gatewayCall = Parent(languageCall);
        Assert.Equal("Microsoft.AspNetCore", gatewayCall.Source.Name);
        // Above the gateway only the test's own client call, under its root span.
        Activity client = trace.Single(p => p.SpanId == gatewayCall.ParentSpanId);
        Assert.Equal("System.Net.Http", client.Source.Name);
        Activity top = client;
        while (top.Parent is { } up) top = up;
        Assert.Equal(Client.Name, top.Source.Name);
        Activity encode = Assert.Single(trace, s => s.OperationName == "encode");
        Activity encoderCall = Parent(encode);
        Assert.Equal("Microsoft.AspNetCore", encoderCall.Source.Name);
        Assert.Equal(languageCall.SpanId, Parent(encoderCall).SpanId);
        Assert.Equal(3, new[] { gatewayCall.SpanId, languageCall.SpanId, encoderCall.SpanId }.Distinct().Count());
        foreach (string name in new[] { "queue wait", "decode" })
            Assert.Equal(languageCall.SpanId, Parent(Assert.Single(trace, s => s.OperationName == name)).SpanId);
        Assert.True(prefill.Duration > TimeSpan.Zero, "the prefill span has no duration");
        Assert.Equal(4, (int)Assert.Single(trace, s => s.OperationName == "decode").GetTagItem("llark.generated_tokens")!);
    }

    private static bool IsAncestor(Activity ancestor, Activity span, IEnumerable<Activity> all)
    {
        var byId = all.GroupBy(s => s.SpanId).ToDictionary(g => g.Key, g => g.First());
        for (ActivitySpanId parent = span.ParentSpanId; parent != default; parent = byId.TryGetValue(parent, out Activity? p) ? p.ParentSpanId : default)
        {
            if (parent == ancestor.SpanId) return true;
        }
        return false;
    }
}
