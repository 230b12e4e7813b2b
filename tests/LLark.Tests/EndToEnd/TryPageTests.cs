using System.Net;
using System.Text.Json;
using LLark.Language.Service;
using LLark.Tests.Checkpoints;
using LLark.Tests.Encoder.Service;
using LLark.Tests.Gateway;
using LLark.Tests.Language.Engine.Serving;
using LLark.Tests.Language.Service;
using LLark.Tests.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace LLark.Tests.EndToEnd;

/// <summary>
/// The whole system on the tiny models as SystemFixture stands it up, with a gateway that also counts the chat
/// completions that carry audio (first in its pipeline, so every request is seen as the browser sent it).
/// </summary>
public sealed class TryPageSystem : IAsyncLifetime, IDisposable
{
    private readonly TempDirectory cache = new();

    internal LoopbackHost Encoder { get; private set; } = null!;
    internal LoopbackHost Language { get; private set; } = null!;
    internal LoopbackHost Gateway { get; private set; } = null!;
    internal ChatUploads Uploads { get; } = new();

    /// <summary>Where to save the README's screenshot, when it is to be taken.</summary>
    internal static string? ScreenshotPath => Environment.GetEnvironmentVariable("LLARK_TRY_PAGE_SCREENSHOT") is { Length: > 0 } path ? path : null;

    internal static bool Demo => ScreenshotPath is not null;

    /// <summary>Chat completion requests seen at the gateway, and how many sent a clip's bytes.</summary>
    internal sealed class ChatUploads : IStartupFilter
    {
        private int chats;
        private int withAudio;

        public int Chats => Volatile.Read(ref chats);

        public int WithAudio => Volatile.Read(ref withAudio);

        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, following) =>
            {
                if (HttpMethods.IsPost(context.Request.Method) && context.Request.Path.Equals("/v1/chat/completions", StringComparison.Ordinal))
                {
                    context.Request.EnableBuffering();
                    using var reader = new StreamReader(context.Request.Body, leaveOpen: true);
                    string body = await reader.ReadToEndAsync(context.RequestAborted);
                    context.Request.Body.Position = 0;
                    Interlocked.Increment(ref chats);
                    if (body.Contains("\"input_audio\"", StringComparison.Ordinal)) Interlocked.Increment(ref withAudio);
                }
                await following(context);
            });
            next(app);
        };
    }

    public async Task InitializeAsync()
    {
        // The README's screenshot is worth real words: the bundled demo models (as DemoSystemTests runs them) answer in
        // them; the tiny ones are faster for every other run.
        Encoder = await EncoderHarness.StartAsync(cache.Path, Demo
            ? new Dictionary<string, string?> { ["LLark:Encoder:ModelPath"] = Path.Combine(RepoPaths.Root, "models", "spectral"), ["LLark:Encoder:Fps"] = "5" }
            : new Dictionary<string, string?> { ["LLark:Encoder:ModelPath"] = Path.Combine(RepoPaths.Root, "models", "jukebox-tiny") });
        var language = new Dictionary<string, string?>
        {
            ["LLark:Language:ModelPath"] = Demo ? Path.Combine(RepoPaths.Root, "models", "llark-demo") : TinyLLark.Directory,
            ["LLark:Language:EncoderAddress"] = Encoder.GrpcAddress.ToString(),
        };
        // The tiny model's context is short: a default answer would leave no room for a follow-up.
        if (!Demo) language["LLark:Language:DefaultMaxNewTokens"] = "16";
        Language = await LoopbackHost.StartAsync(LanguageServiceHost.Build([], StepPause.In(LoopbackHost.Settings(language))));
        await LanguageServiceTests.WaitServing(Language);
        Gateway = await LoopbackHost.StartAsync(GatewayTestHost.Build(GatewayTestHost.Destinations(Language.GrpcAddress, Encoder.GrpcAddress),
            builder => builder.Services.AddSingleton<IStartupFilter>(Uploads)));
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Language.DisposeAsync();
        await Encoder.DisposeAsync();
    }

    public void Dispose() => cache.Dispose();
}

/// <summary>
/// The gateway's page at / in headless Chromium against the real system: the key typed in, the bundled clip chosen,
/// a question typed and sent with a click, the answer seen growing as it streams, a follow-up asked by the clip's
/// embedding id. Chromium is Debian's (tools/setup.sh), driven over the DevTools protocol.
/// </summary>
public sealed class TryPageTests(TryPageSystem system) : IClassFixture<TryPageSystem>
{
    private static readonly string Clip = Path.Combine(RepoPaths.Root, "models", "clips", "tiny-test-4s.wav");

    [Fact]
    public async Task ThePageLoadsWithoutAKeyAndOpensNothingElse()
    {
        using var http = new HttpClient { BaseAddress = system.Gateway.HttpAddress };
        using (HttpResponseMessage page = await http.GetAsync(new Uri("/", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Equal("text/html", page.Content.Headers.ContentType!.MediaType);
            string csp = page.Headers.GetValues("Content-Security-Policy").Single();
            Assert.StartsWith("default-src 'self'", csp, StringComparison.Ordinal);
            Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
            Assert.Equal("nosniff", page.Headers.GetValues("X-Content-Type-Options").Single());
            string html = await page.Content.ReadAsStringAsync();
            Assert.Contains("<script src=\"/try.js\"", html, StringComparison.Ordinal);
            Assert.DoesNotContain("<script>", html, StringComparison.Ordinal);
        }
        foreach (string file in new[] { "/try.js", "/try.css" })
        {
            using HttpResponseMessage r = await http.GetAsync(new Uri(file, UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        // Only the page's own files, by exact path and for reading, skip the key check.
        foreach (string other in new[] { "/index.html", "/try.js/", "/TryPage/try.js", "/appsettings.json", "/LLark.Gateway.dll", "/v1/models", "/v1/model-info" })
        {
            using HttpResponseMessage r = await http.GetAsync(new Uri(other, UriKind.Relative));
            Assert.True(r.StatusCode == HttpStatusCode.Unauthorized, $"{other}: {r.StatusCode}");
        }
        using (HttpResponseMessage post = await http.PostAsync(new Uri("/", UriKind.Relative), new StringContent("x")))
            Assert.Equal(HttpStatusCode.Unauthorized, post.StatusCode);
    }

    [Fact]
    public async Task AskingAboutAClipAndAFollowUpStreamsAnswersAndUploadsTheClipOnce()
    {
        // Each decode step waits a little, so the answer is seen to grow rather than appear whole.
        StepPause.Of(system.Language).Pause = TimeSpan.FromMilliseconds(40);
        await using HeadlessChromium browser = await HeadlessChromium.StartAsync();
        await browser.Navigate(system.Gateway.HttpAddress!);

        await browser.Type("#key", GatewayTestHost.MainKey);
        await browser.ChooseFile("#file", Clip);
        await browser.WaitFor("document.querySelector('#clip').textContent.includes(' s, ')", TimeSpan.FromSeconds(30));
        // The waveform was drawn: some pixel of the canvas is not blank.
        Assert.True((await browser.Evaluate("""
            (() => { const c = document.querySelector('#wave'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                     for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true; return false; })()
            """)).GetBoolean());

        // Every length the answer's text takes, as the page shows it.
        await browser.Evaluate("""
            window.seen = [];
            new MutationObserver(() => { const a = document.querySelectorAll('.turn.assistant'); if (a.length) window.seen.push([a.length, a[a.length - 1].textContent.length]); })
              .observe(document.querySelector('#log'), { subtree: true, childList: true, characterData: true });
            """);

        await browser.Type("#max", "12");
        await browser.Type("#question", "What instruments are playing?");
        await browser.Click("#send");
        string first = await Answer(browser, 1);
        int[] lengths = (await browser.Evaluate("window.seen.filter(s => s[0] === 1).map(s => s[1]).filter(n => n > 0)"))
            .EnumerateArray().Select(e => e.GetInt32()).Distinct().ToArray();
        Assert.True(lengths.Length > 1, $"the answer appeared at once: {string.Join(", ", lengths)}");
        Assert.Equal((1, 1), (system.Uploads.Chats, system.Uploads.WithAudio));
        Assert.Equal(1, EncoderHarness.Metrics(system.Encoder).ClipsEncoded);

        await browser.Type("#question", "And what key is it in?");
        await browser.PressEnter();
        string second = await Answer(browser, 2);
        // The follow-up named the clip by its id: a second request, no second upload.
        Assert.Equal((2, 1), (system.Uploads.Chats, system.Uploads.WithAudio));
        Assert.Equal(1, EncoderHarness.Metrics(system.Encoder).ClipsEncoded);
        Assert.Equal(2, (await browser.Evaluate("document.querySelectorAll('.turn.user').length")).GetInt32());
        Assert.Equal(0, (await browser.Evaluate("document.querySelectorAll('.turn.error').length")).GetInt32());
        Assert.Equal(first, (await browser.Evaluate("document.querySelectorAll('.turn.assistant')[0].textContent")).GetString());
        Assert.False(string.IsNullOrEmpty(second));

        // The key lives in the tab's sessionStorage, and a reload keeps it without asking again.
        await browser.Navigate(system.Gateway.HttpAddress!);
        Assert.Equal(GatewayTestHost.MainKey, (await browser.Evaluate("document.querySelector('#key').value")).GetString());

        if (TryPageSystem.ScreenshotPath is { } shot) await Screenshot(browser, shot);
    }

    /// <summary>Waits for the <paramref name="n"/>th answer to finish streaming and returns its text.</summary>
    private static async Task<string> Answer(HeadlessChromium browser, int n)
    {
        await browser.WaitFor($"document.querySelectorAll('.turn.assistant, .turn.error').length >= {n} && document.querySelector('#log').getAttribute('aria-busy') === 'false'",
            TimeSpan.FromSeconds(60));
        JsonElement error = await browser.Evaluate("document.querySelector('.turn.error')?.textContent ?? null");
        Assert.True(error.ValueKind == JsonValueKind.Null, $"the page showed an error: {error}");
        string text = (await browser.Evaluate($"document.querySelectorAll('.turn.assistant')[{n - 1}].textContent")).GetString()!;
        Assert.False(string.IsNullOrWhiteSpace(text), $"answer {n} is empty");
        return text;
    }

    /// <summary>The README's picture: the demo clip, and what the demo models answer about it.</summary>
    private static async Task Screenshot(HeadlessChromium browser, string path)
    {
        await browser.ChooseFile("#file", Path.Combine(RepoPaths.Root, "models", "clips", "demo-heldout-electric-piano-eb-major.wav"));
        await browser.WaitFor("document.querySelector('#clip').textContent.includes(' s, ')", TimeSpan.FromSeconds(30));
        await browser.Type("#max", "128");
        await browser.Type("#question", "Describe this clip: its tempo, key and instruments.");
        await browser.PressEnter();
        await Answer(browser, 1);
        await browser.Type("#question", "Write a short bedtime story that fits it.");
        await browser.PressEnter();
        await Answer(browser, 2);
        await File.WriteAllBytesAsync(path, await browser.Screenshot());
    }
}
