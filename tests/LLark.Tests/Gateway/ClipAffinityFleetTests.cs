using System.Globalization;
using System.Text;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Gateway;
using LLark.Language.Engine.Serving;
using LLark.Language.Service;
using LLark.Language.V1;
using LLark.Tests.Language.Service;
using LLark.Tests.TestSupport;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using static LLark.Tests.Gateway.GatewayTestHost;
using ChatTurn = LLark.Language.V1.ChatTurn;

namespace LLark.Tests.Gateway;

/// <summary>
/// Three language pods (tiny LLark, prefix cache on) behind the real gateway, whose language cluster balances with
/// ClipAffinity as it ships, a fourth pod on its own to compare with, and the stand-in encoder holding the clips.
/// </summary>
public sealed class ClipAffinityFleetFixture : IAsyncLifetime
{
    /// <summary>More frames than the positions before the audio, so a prefix that reaches past them is the clip's.</summary>
    internal const int Frames = 120;

    internal LoopbackHost EncoderHost { get; private set; } = null!;
    internal StoredEmbeddingsEncoder Encoder { get; private set; } = null!;
    internal (LoopbackHost Host, CallCounter Calls)[] Pods { get; private set; } = [];
    internal LoopbackHost SinglePod { get; private set; } = null!;
    internal LoopbackHost Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        (EncoderHost, Encoder) = await StoredEmbeddingsEncoder.StartAsync();
        CallCounter[] counters = [new(), new(), new(), new()];
        LoopbackHost[] hosts = await Task.WhenAll(counters.Select(StartPod));
        Pods = [.. hosts.Take(3).Zip(counters)];
        SinglePod = hosts[3];
        // The shipped cluster's one destination, "pods", is the first pod; the others join it.
        var settings = Destinations(hosts[0].GrpcAddress, EncoderHost.GrpcAddress);
        settings["ReverseProxy:Clusters:language:Destinations:pods-1:Address"] = hosts[1].GrpcAddress.ToString();
        settings["ReverseProxy:Clusters:language:Destinations:pods-2:Address"] = hosts[2].GrpcAddress.ToString();
        Gateway = await LoopbackHost.StartAsync(Build(settings));
    }

    private async Task<LoopbackHost> StartPod(CallCounter counter)
    {
        LoopbackHost host = await LoopbackHost.StartAsync(LanguageServiceHost.Build([], builder =>
        {
            LoopbackHost.Settings(new Dictionary<string, string?>
            {
                ["LLark:Language:ModelPath"] = TinyLLark.Directory,
                ["LLark:Language:EncoderAddress"] = EncoderHost.GrpcAddress.ToString(),
                ["LLark:Language:PrefixCacheBytes"] = (256 << 20).ToString(CultureInfo.InvariantCulture),
            })(builder);
            builder.Services.AddSingleton<IStartupFilter>(counter);
        }));
        await LanguageServiceTests.WaitServing(host);
        return host;
    }

    /// <summary>Stores a clip in the encoder under <paramref name="id"/>, for the pods to fetch by id.</summary>
    internal void Store(string id, int seed) =>
        Encoder.Embeddings[id] = (EmbeddingFramesCodec.Decode(LanguageServiceTests.Frames(Frames, seed)), TinyLLark.AudioWidth, TinyLLark.Fps);

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        foreach ((LoopbackHost host, _) in Pods) await host.DisposeAsync();
        await SinglePod.DisposeAsync();
        await EncoderHost.DisposeAsync();
    }
}

/// <summary>Questions about one clip go to one pod, by gRPC and by the JSON front alike, so the pods' prefix caches hit as one pod's would.</summary>
public sealed class ClipAffinityFleetTests(ClipAffinityFleetFixture fixture, ITestOutputHelper output) : IClassFixture<ClipAffinityFleetFixture>
{
    private static readonly string[] Questions = ["Describe this clip.", "What key is it in?", "What is the tempo?", "Which instruments play?"];

    private static GenerateRequest Ask(string clip, string question)
    {
        var request = new GenerateRequest { EmbeddingId = clip, Stopping = new StoppingParameters { MaxNewTokens = 2, IgnoreEos = true } };
        request.Turns.Add(new ChatTurn { Human = question });
        return request;
    }

    /// <summary>The prompt state of the clip came from the cache: more positions than the audio, so past its end.</summary>
    private static bool Hit(GenerateFinal final) => final.Usage.CachedTokens > final.Usage.AudioTokens;

    private static async Task<GenerateFinal> ByGrpc(LoopbackHost host, GenerateRequest request, Metadata? headers = null) =>
        (await GatewayTests.Run(new LanguageService.LanguageServiceClient(host.Channel), request, headers)).Final;

    private async Task<GenerateFinal> ByJson(GenerateRequest request)
    {
        using var http = new HttpClient { BaseAddress = fixture.Gateway.HttpAddress };
        http.DefaultRequestHeaders.Add("x-api-key", MainKey);
        using var content = new StringContent(Google.Protobuf.JsonFormatter.Default.Format(request), Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await http.PostAsync(new Uri("/v1/generate", UriKind.Relative), content);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        await foreach ((string? name, string data) in GatewayTests.Events(await response.Content.ReadAsStreamAsync()))
        {
            if (name == "final") return GenerateFinal.Parser.ParseJson(data);
        }
        throw new InvalidOperationException("no final event");
    }

    /// <summary>Asks through the gateway, by gRPC or the JSON front, and says which pod answered (calls here are one at a time).</summary>
    private async Task<(GenerateFinal Final, int Pod)> Through(GenerateRequest request, bool json)
    {
        int[] before = [.. fixture.Pods.Select(p => p.Calls.Calls)];
        GenerateFinal final = json ? await ByJson(request) : await ByGrpc(fixture.Gateway, request, Bearer(MainKey));
        int[] grew = [.. fixture.Pods.Select((p, i) => p.Calls.Calls - before[i])];
        Assert.Equal(1, grew.Sum());
        int pod = Array.IndexOf(grew, 1);
        Assert.DoesNotContain(ClipAffinity.Header, fixture.Pods[pod].Calls.LastHeaders, StringComparer.OrdinalIgnoreCase);
        return (final, pod);
    }

    [Fact]
    public async Task QuestionsAboutOneClipAllGoToOnePodByGrpcAndByJson()
    {
        fixture.Store("solo-clip", seed: 77);
        PrefixCache[] caches = [.. fixture.Pods.Select(p => p.Host.App.Services.GetRequiredService<ModelHost>().Ready().PrefixCache!)];
        long[] hitsBefore = [.. caches.Select(c => c.Hits)];
        var answered = new List<(GenerateFinal Final, int Pod)>();
        for (int i = 0; i < 6; i++) answered.Add(await Through(Ask("solo-clip", Questions[i % Questions.Length]), json: i % 2 == 1));

        int pod = answered[0].Pod;
        Assert.All(answered, a => Assert.Equal(pod, a.Pod));
        Assert.False(Hit(answered[0].Final));
        Assert.All(answered.Skip(1), a => Assert.True(Hit(a.Final), $"{a.Final.Usage.CachedTokens} positions cached"));
        Assert.True(caches[pod].Hits - hitsBefore[pod] >= 5, $"{caches[pod].Hits - hitsBefore[pod]} hits on the clip's pod");
    }

    [Fact]
    public async Task AMixedWorkloadHitsTheFleetsCachesAsOftenAsOnePodsCache()
    {
        string[] clips = [.. Enumerable.Range(0, 20).Select(i => $"mixed-clip-{i:D2}")];
        for (int i = 0; i < clips.Length; i++) fixture.Store(clips[i], seed: 1000 + i);
        (string Clip, string Question)[] workload = [.. clips.SelectMany(c => Questions.Select(q => (c, q)))];
        new Random(20261207).Shuffle(workload);

        int fleetHits = 0;
        var podOfClip = new Dictionary<string, int>();
        for (int i = 0; i < workload.Length; i++)
        {
            (GenerateFinal final, int pod) = await Through(Ask(workload[i].Clip, workload[i].Question), json: i % 2 == 1);
            Assert.Equal(podOfClip.GetValueOrDefault(workload[i].Clip, pod), pod);
            podOfClip[workload[i].Clip] = pod;
            if (Hit(final)) fleetHits++;
        }
        int singleHits = 0, singleColdMisses = 0;
        var seen = new HashSet<string>();
        foreach ((string clip, string question) in workload)
        {
            GenerateFinal final = await ByGrpc(fixture.SinglePod, Ask(clip, question));
            if (Hit(final)) singleHits++;
            if (seen.Add(clip) && !Hit(final)) singleColdMisses++;
        }

        double fleet = (double)fleetHits / workload.Length, single = (double)singleHits / workload.Length;
        int[] clipsPerPod = [.. Enumerable.Range(0, 3).Select(p => podOfClip.Values.Count(v => v == p))];
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"prefix-cache hit rate, {workload.Length} questions about {clips.Length} clips: fleet of 3 pods {fleet:P1} ({fleetHits}), one pod {single:P1} ({singleHits}); clips per pod {string.Join("/", clipsPerPod)}"));
        // The measure itself: on one pod with room for every clip, exactly each clip's first question misses.
        Assert.Equal((clips.Length, workload.Length - clips.Length), (singleColdMisses, singleHits));
        Assert.All(clipsPerPod, n => Assert.True(n > 0, $"clips per pod: {string.Join("/", clipsPerPod)}"));
        Assert.True(fleet >= 0.9 * single, $"fleet {fleet:P1} against one pod's {single:P1}");
    }
}
