using LLark.Common.V1;
using LLark.Language.Service;
using LLark.Language.V1;
using LLark.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace LLark.Tests.Language.Service;

/// <summary>The service with <c>PrefixCacheBytes</c> set: questions about one clip reuse its prompt state, and say so in the metrics.</summary>
public sealed class LanguageServicePrefixCacheTests
{
    private static GenerateRequest Ask(string question, string? answer = null, string? followUp = null)
    {
        var request = new GenerateRequest { Stopping = new StoppingParameters { MaxNewTokens = 6, IgnoreEos = true } };
        request.Turns.Add(new LLark.Language.V1.ChatTurn { Human = question, Assistant = answer ?? "" });
        if (followUp is not null) request.Turns.Add(new LLark.Language.V1.ChatTurn { Human = followUp });
        return request;
    }

    [Fact]
    public async Task QuestionsAboutOneClipHitTheCacheAndAnswerAsWithoutIt()
    {
        (LoopbackHost encoderHost, StoredEmbeddingsEncoder encoder) = await StoredEmbeddingsEncoder.StartAsync();
        await using LoopbackHost _ = encoderHost;
        EmbeddingFrames frames = LanguageServiceTests.Frames(50, seed: 21);
        encoder.Embeddings["clip-p"] = (EmbeddingFramesCodec.Decode(frames), TinyLLark.AudioWidth, TinyLLark.Fps);
        await using LoopbackHost host = await LoopbackHost.StartAsync(LanguageServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = TinyLLark.Directory,
            ["LLark:Language:EncoderAddress"] = encoderHost.GrpcAddress.ToString(),
            ["LLark:Language:PrefixCacheBytes"] = (64 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture),
        })));
        await LanguageServiceTests.WaitServing(host);
        var client = new LanguageService.LanguageServiceClient(host.Channel);

        var cachedById = new List<uint>();
        async Task<string> Answer(GenerateRequest request, bool byId)
        {
            if (byId) request.EmbeddingId = "clip-p";
            else request.Frames = frames;
            GenerateFinal final = (await LanguageServiceTests.Run(client, request)).Final;
            if (byId) cachedById.Add(final.Usage.CachedTokens);
            Assert.InRange(final.Usage.CachedTokens, 0u, final.Usage.PromptTokens - 1);
            return final.Text;
        }
        // Inline frames carry no id and are known by their bytes, so they never share state with the id's.
        string first = await Answer(Ask("Describe this clip."), byId: true);
        Assert.Equal(await Answer(Ask("Describe this clip."), byId: false), first);
        string key = await Answer(Ask("What key is it in?"), byId: true);
        Assert.Equal(await Answer(Ask("What key is it in?"), byId: false), key);
        string followUp = await Answer(Ask("Describe this clip.", first.Trim(), "And the tempo?"), byId: true);
        Assert.Equal(await Answer(Ask("Describe this clip.", first.Trim(), "And the tempo?"), byId: false), followUp);

        // The usage tells the client what the cache saved: nothing for the first question, the clip and more after.
        Assert.Equal(0u, cachedById[0]);
        Assert.All(cachedById.Skip(1), cached => Assert.True(cached > 50, $"{cached} cached positions"));
        var cache = host.App.Services.GetRequiredService<ModelHost>().Ready().PrefixCache!;
        // Only the very first request misses: the first by bytes reuses the system line, the rest reach past the audio.
        Assert.True(cache.SavedPositions > 4 * 50, $"{cache.SavedPositions} positions saved");
        Assert.InRange(cache.BytesHeld, 1, 64 << 20);
        Assert.InRange(cache.BytesReserved, cache.BytesHeld, 64 << 20);
        Assert.Equal((5, 1), (cache.Hits, cache.Misses));
        using var http = new HttpClient { BaseAddress = host.HttpAddress };
        string metrics = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        // Other tests' caches in this process report on the same meter, so only the names are checked here.
        foreach (string name in new[] { "bytes", "reserved_bytes", "evictions_total", "hits_total", "misses_total", "saved_positions_total" })
            Assert.Contains($"\nllark_language_prefix_cache_{name}{{", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ANegativeBudgetIsRefusedAtStart()
    {
        await using Microsoft.AspNetCore.Builder.WebApplication app = LanguageServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = TinyLLark.Directory,
            ["LLark:Language:PrefixCacheBytes"] = "-1",
        }));
        var e = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("PrefixCacheBytes", e.Message, StringComparison.Ordinal);
    }
}
