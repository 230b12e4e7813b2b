using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using Google.Protobuf;
using LLark.Common.V1;
using LLark.Gateway;
using LLark.Language.V1;
using LLark.Tests.Language.Service;
using LLark.Tests.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using Yarp.ReverseProxy.Model;
using ChatTurn = LLark.Language.V1.ChatTurn;

namespace LLark.Tests.Gateway;

/// <summary>The clip's key of a Generate request, the body put back as it came, and the rendezvous ranking of the pods.</summary>
public sealed class ClipAffinityTests(ITestOutputHelper output)
{
    private const int Room = 4;

    private static GenerateRequest Ask(Action<GenerateRequest>? audio = null)
    {
        var request = new GenerateRequest
        {
            Sampling = new SamplingParameters { Temperature = 0.5f, Seed = 3 },
            Stopping = new StoppingParameters { MaxNewTokens = 7 },
        };
        request.Turns.Add(new ChatTurn { Human = "What key is it in?" });
        audio?.Invoke(request);
        return request;
    }

    private static string Sha256(IMessage message) => Convert.ToHexStringLower(SHA256.HashData(message.ToByteArray()));

    [Fact]
    public void EachKindOfClipHasItsKey()
    {
        EmbeddingFrames frames = LanguageServiceTests.Frames(5, seed: 2);
        var audio = new AudioBytes { Data = ByteString.CopyFromUtf8("RIFF....WAVE"), Filename = "a.wav" };

        Assert.Equal("3f1c-clip", ClipAffinity.KeyOf(Ask(r => r.EmbeddingId = "3f1c-clip")));
        Assert.Equal("frames:" + Sha256(frames), ClipAffinity.KeyOf(Ask(r => r.Frames = frames)));
        Assert.Equal("audio:" + Sha256(audio), ClipAffinity.KeyOf(Ask(r => r.AudioBytes = audio)));
        Assert.Null(ClipAffinity.KeyOf(Ask()));
        Assert.Null(ClipAffinity.KeyOf(Ask(r => r.EmbeddingId = "")));

        // Only the clip counts: another question, other settings, the same key.
        GenerateRequest other = Ask(r => r.Frames = frames);
        other.Turns[0].Human = "And the tempo?";
        other.Sampling = null;
        Assert.Equal(ClipAffinity.KeyOf(Ask(r => r.Frames = frames)), ClipAffinity.KeyOf(other));

        // As parsing does, the last of the oneof's fields on the wire wins.
        byte[] twice = [.. Ask(r => r.EmbeddingId = "first").ToByteArray(), .. Ask(r => r.Frames = frames).ToByteArray()];
        Assert.Equal(GenerateRequest.AudioOneofCase.Frames, GenerateRequest.Parser.ParseFrom(twice).AudioCase);
        Assert.Equal("frames:" + Sha256(frames), ClipAffinity.KeyOf(twice));

        // A message in the middle of a larger buffer, as the gateway reads it after the gRPC frame's header.
        byte[] message = Ask(r => r.AudioBytes = audio).ToByteArray();
        byte[] framed = [1, 2, 3, 4, 5, .. message, 9, 9];
        Assert.Equal("audio:" + Sha256(audio), ClipAffinity.KeyOf(new ArraySegment<byte>(framed, 5, message.Length)));

        // Malformed: cut short inside the clip, or not protobuf at all.
        Assert.Null(ClipAffinity.KeyOf(message[..^20]));
        Assert.Null(ClipAffinity.KeyOf(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }));
    }

    /// <summary>A gRPC frame: the compressed flag, the big-endian length, the message.</summary>
    private static byte[] Frame(byte[] message, byte compressed = 0, uint? length = null)
    {
        byte[] frame = new byte[5 + message.Length];
        frame[0] = compressed;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), length ?? (uint)message.Length);
        message.CopyTo(frame, 5);
        return frame;
    }

    /// <summary>A body that arrives a few bytes at a time, as a network's does, and says how much of it was read.</summary>
    private sealed class TrickleStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, 7)], cancellationToken);
    }

    public static TheoryData<string> Bodies => ["id", "frames then more", "compressed", "malformed", "cut short", "over the limit", "no limit", "empty", "header only"];

    [Theory]
    [MemberData(nameof(Bodies))]
    public async Task TheBodyIsForwardedByteForByte(string body)
    {
        byte[] byId = Ask(r => r.EmbeddingId = "clip-9").ToByteArray();
        // Over 64 KiB, so the buffer grows as it fills.
        byte[] byFrames = Ask(r => r.Frames = LanguageServiceTests.Frames(400, seed: 5)).ToByteArray();
        long? limit = 1 << 20;
        (byte[] sent, string? key) = body switch
        {
            "id" => (Frame(byId), "clip-9"),
            // A server-streaming call has one message; whatever follows it is still the caller's to send.
            "frames then more" => ([.. Frame(byFrames), .. Frame(byId)], ClipAffinity.KeyOf(byFrames)),
            "compressed" => (Frame(byId, compressed: 1), null),
            "malformed" => (Frame([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]), null),
            "cut short" => (Frame(byFrames, length: (uint)byFrames.Length + 100), null),
            "over the limit" => (Frame(byFrames), null),
            "no limit" => (Frame(byId), null),
            "empty" => ([], null),
            _ => (Frame(byId)[..5], null),
        };
        if (body == "over the limit") limit = byFrames.Length;
        if (body == "no limit") limit = null;

        var context = new DefaultHttpContext();
        var source = new TrickleStream(sent);
        context.Request.Body = source;
        Assert.Equal(key, await GenerateKeyReader.ReadKeyAsync(context.Request, limit, CancellationToken.None));
        // A message over the limit is not buffered: only its header was read.
        if (body == "over the limit") Assert.Equal(5, source.Position);

        var forwarded = new MemoryStream();
        Stream restored = context.Request.Body;
        byte[] chunk = new byte[11];
        while (true)
        {
            // YARP waits for data with a zero-byte read before each real one.
            Assert.Equal(0, await restored.ReadAsync(Memory<byte>.Empty));
            int n = await restored.ReadAsync(chunk);
            if (n == 0) break;
            forwarded.Write(chunk, 0, n);
        }
        Assert.Equal(sent, forwarded.ToArray());
    }

    /// <summary>A language pod that keeps the body of every Generate call as it arrived and answers OK.</summary>
    private static async Task<(LoopbackHost Host, ConcurrentQueue<byte[]> Bodies)> StartRecordingPod()
    {
        var bodies = new ConcurrentQueue<byte[]>();
        WebApplicationBuilder builder = WebApplication.CreateBuilder();
        LoopbackHost.Settings(new Dictionary<string, string?> { ["LLark:Listen:HttpPort"] = "-1" })(builder);
        global::LLark.ServiceDefaults.ServiceDefaultsExtensions.AddLLarkServiceDefaults(builder);
        WebApplication app = builder.Build();
        app.MapPost(GenerateKeyReader.GeneratePath, async context =>
        {
            // As a gRPC service does: the message size is the server's to limit, not Kestrel's body limit.
            context.Features.Get<IHttpMaxRequestBodySizeFeature>()!.MaxRequestBodySize = null;
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            bodies.Enqueue(body.ToArray());
            context.Response.ContentType = "application/grpc";
            context.Response.AppendTrailer("grpc-status", "0");
        });
        global::LLark.ServiceDefaults.ServiceDefaultsExtensions.MapLLarkDefaults(app);
        app.Services.GetRequiredService<global::LLark.ServiceDefaults.ServingStatus>().Set(true);
        return (await LoopbackHost.StartAsync(app), bodies);
    }

    [Fact]
    public async Task AProxiedGenerateReachesThePodAsTheCallerSentIt()
    {
        var (pod, received) = await StartRecordingPod();
        await using LoopbackHost _ = pod;
        await using LoopbackHost gateway = await LoopbackHost.StartAsync(GatewayTestHost.Build(
            GatewayTestHost.Destinations(pod.GrpcAddress, new Uri("http://127.0.0.1:1"))));
        using var http = new HttpClient();
        // 5 MB is over the gateway's own body limit (its gRPC message limit, 4 MiB) and within the route's (65 MiB), whose
        // message the gateway reads; 70 MB is over the route's, and refused without reaching the pod whole.
        var clip = new AudioBytes { Data = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(5_000_000)) };
        var large = new AudioBytes { Data = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(70_000_000)) };
        byte[][] bodies =
        [
            Frame(Ask(r => r.AudioBytes = clip).ToByteArray()),
            Frame(Ask(r => r.AudioBytes = large).ToByteArray()),
            Frame(Ask(r => r.EmbeddingId = "z").ToByteArray(), compressed: 1),
        ];
        foreach (byte[] sent in bodies)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(gateway.GrpcAddress, GenerateKeyReader.GeneratePath))
            {
                Version = System.Net.HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                Content = new ByteArrayContent(sent),
            };
            request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
            request.Headers.Add("te", "trailers");
            request.Headers.Add("authorization", $"Bearer {GatewayTestHost.MainKey}");
            using HttpResponseMessage response = await http.SendAsync(request);
            await response.Content.ReadAsByteArrayAsync();
            if (sent.Length > 68157440)
            {
                Assert.Equal("8", response.Headers.TryGetValues("grpc-status", out var status) ? Assert.Single(status)
                    : Assert.Single(response.TrailingHeaders.GetValues("grpc-status")));
                Assert.False(received.TryDequeue(out byte[]? partial));
                continue;
            }
            Assert.Equal("0", Assert.Single(response.TrailingHeaders.GetValues("grpc-status")));
            Assert.True(received.TryDequeue(out byte[]? arrived));
            Assert.True(sent.AsSpan().SequenceEqual(arrived), $"{arrived.Length} bytes arrived of {sent.Length} sent");
        }
    }

    private static DestinationState[] Pods(int count) => [.. Enumerable.Range(0, count).Select(i => new DestinationState($"pods[10.0.0.{i + 1}]"))];

    private static string[] Keys(int count) => [.. Enumerable.Range(0, count).Select(i => $"clip-{i:D4}")];

    [Fact]
    public void EachKeyRanksThePodsTheSameWayWhateverTheirOrder()
    {
        DestinationState[] pods = Pods(3);
        DestinationState[] reversed = [.. pods.Reverse()];
        var first = new Dictionary<string, int>();
        foreach (string key in Keys(300))
        {
            DestinationState picked = ClipAffinity.Pick(key, pods, Room)!;
            Assert.Same(picked, ClipAffinity.Pick(key, reversed, Room));
            Assert.Same(picked, ClipAffinity.Pick(key, pods, Room));
            first[picked.DestinationId] = first.GetValueOrDefault(picked.DestinationId) + 1;
        }
        // The keys are spread over the pods (100 each expected).
        Assert.All(pods, pod => Assert.InRange(first[pod.DestinationId], 70, 130));
    }

    [Fact]
    public void AFourthPodTakesAboutAQuarterOfTheKeysAndOnlyThose()
    {
        DestinationState[] three = Pods(3), four = [.. three, new DestinationState("pods[10.0.0.4]")];
        int moved = 0;
        foreach (string key in Keys(1000))
        {
            DestinationState before = ClipAffinity.Pick(key, three, Room)!, after = ClipAffinity.Pick(key, four, Room)!;
            if (before == after) continue;
            moved++;
            Assert.Same(four[3], after);
        }
        output.WriteLine($"adding a 4th pod moved {moved} of 1000 keys (1/4 expected)");
        Assert.InRange(moved, 200, 300);

        // A pod that goes (YARP passes only the available ones) gives its keys to their next pods; no other key moves.
        var gone = new Dictionary<string, int>();
        foreach (string key in Keys(1000))
        {
            DestinationState before = ClipAffinity.Pick(key, four, Room)!, after = ClipAffinity.Pick(key, three, Room)!;
            if (before != four[3]) Assert.Same(before, after);
            else gone[after.DestinationId] = gone.GetValueOrDefault(after.DestinationId) + 1;
        }
        Assert.Equal(3, gone.Count);
    }

    [Fact]
    public void AFullPodPassesAKeyToTheNextInItsRanking()
    {
        DestinationState[] pods = Pods(4);
        foreach (string key in Keys(50))
        {
            DestinationState top = ClipAffinity.Pick(key, pods, Room)!;
            DestinationState second = ClipAffinity.Pick(key, [.. pods.Where(p => p != top)], Room)!;
            DestinationState third = ClipAffinity.Pick(key, [.. pods.Where(p => p != top && p != second)], Room)!;
            top.ConcurrentRequestCount = Room - 1;
            Assert.Same(top, ClipAffinity.Pick(key, pods, Room));
            top.ConcurrentRequestCount = Room;
            Assert.Same(second, ClipAffinity.Pick(key, pods, Room));
            // Busier than the rest does not matter while there is room: only full does.
            second.ConcurrentRequestCount = Room - 1;
            Assert.Same(second, ClipAffinity.Pick(key, pods, Room));
            second.ConcurrentRequestCount = Room + 3;
            Assert.Same(third, ClipAffinity.Pick(key, pods, Room));
            // All full: the clip's own pod, whose cache holds it, rather than another queue.
            foreach (DestinationState pod in pods) pod.ConcurrentRequestCount = Room;
            Assert.Same(top, ClipAffinity.Pick(key, pods, Room));
            foreach (DestinationState pod in pods) pod.ConcurrentRequestCount = 0;
        }
    }

    [Fact]
    public void WithoutAKeyTheLessBusyOfTwo()
    {
        DestinationState[] two = Pods(2);
        two[0].ConcurrentRequestCount = 5;
        two[1].ConcurrentRequestCount = 2;
        // With two pods the two choices are always both of them.
        for (int i = 0; i < 100; i++) Assert.Same(two[1], ClipAffinity.Pick(null, two, Room));

        DestinationState[] three = Pods(3);
        var picked = new HashSet<DestinationState>();
        for (int i = 0; i < 300; i++) picked.Add(ClipAffinity.Pick(null, three, Room)!);
        Assert.Equal(3, picked.Count);

        Assert.Null(ClipAffinity.Pick("clip", [], Room));
        DestinationState[] one = Pods(1);
        one[0].ConcurrentRequestCount = Room;
        Assert.Same(one[0], ClipAffinity.Pick("clip", one, Room));
    }
}
