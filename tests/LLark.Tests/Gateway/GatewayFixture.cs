using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using LLark.Gateway;
using LLark.Language.Service;
using LLark.Tests.Language.Service;
using LLark.Tests.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace LLark.Tests.Gateway;

/// <summary>The gateway as it ships (its appsettings.json), on loopback, with test keys and destinations laid over it.</summary>
internal static class GatewayTestHost
{
    public const string MainKey = "main-key-0123456789";
    public const string LimitedKey = "limited-key-0123456789";
    public const string NarrowKey = "narrow-key-0123456789";
    public const string FileKey = "file-key-0123456789";

    public static string Sha256Hex(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    public static Metadata Bearer(string key) => new() { { "authorization", $"Bearer {key}" } };

    /// <summary>The main key (limits out of the way, unless <paramref name="mainKey"/> is false) plus <paramref name="settings"/>.</summary>
    public static WebApplication Build(IDictionary<string, string?> settings, Action<WebApplicationBuilder>? configure = null, bool mainKey = true) =>
        GatewayHost.Build([], builder =>
        {
            builder.Configuration.AddJsonFile(Path.Combine(RepoPaths.Root, "gateway", "LLark.Gateway", "appsettings.json"), optional: false);
            var defaults = new Dictionary<string, string?>
            {
                // Backends stopped by a test are probed again within a test's patience.
                ["ReverseProxy:Clusters:language:HealthCheck:Active:Interval"] = "00:00:01",
                ["ReverseProxy:Clusters:encoder:HealthCheck:Active:Interval"] = "00:00:01",
            };
            if (mainKey)
            {
                defaults["LLark:Gateway:ApiKeys:0:Name"] = "main";
                defaults["LLark:Gateway:ApiKeys:0:Sha256"] = Sha256Hex(MainKey);
                defaults["LLark:Gateway:ApiKeys:0:RequestsPerSecond"] = "1000";
                defaults["LLark:Gateway:ApiKeys:0:Burst"] = "1000";
                defaults["LLark:Gateway:ApiKeys:0:MaxConcurrentStreams"] = "100";
            }
            LoopbackHost.Settings(defaults)(builder);
            builder.Configuration.AddInMemoryCollection(settings);
            configure?.Invoke(builder);
        });

    public static Dictionary<string, string?> Destinations(Uri language, Uri encoder) => new()
    {
        ["ReverseProxy:Clusters:language:Destinations:pods:Address"] = language.ToString(),
        ["ReverseProxy:Clusters:encoder:Destinations:pods:Address"] = encoder.ToString(),
    };
}

/// <summary>Counts the calls that reach a host, to show that refused calls never did, and keeps the last one's header names.</summary>
internal sealed class CallCounter : IStartupFilter
{
    public int Calls;

    public volatile string[] LastHeaders = [];

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use((HttpContext context, RequestDelegate inner) =>
        {
            if (context.Request.Path.StartsWithSegments("/llark.language.v1.LanguageService", StringComparison.Ordinal))
            {
                LastHeaders = [.. context.Request.Headers.Keys];
                Interlocked.Increment(ref Calls);
            }
            return inner(context);
        });
        next(app);
    };
}

/// <summary>
/// The real language service (tiny LLark) and the stand-in encoder behind the real gateway, with four keys: main (limits
/// out of the way), limited (burst 2, one call per 10 s), narrow (one call in flight), and one from a key file.
/// </summary>
public sealed class GatewayFixture : IAsyncLifetime
{
    private string keyFile = "";

    internal LoopbackHost Language { get; private set; } = null!;
    internal LoopbackHost EncoderHost { get; private set; } = null!;
    internal StoredEmbeddingsEncoder Encoder { get; private set; } = null!;
    internal LoopbackHost Gateway { get; private set; } = null!;
    internal CallCounter LanguageCalls { get; } = new();

    public async Task InitializeAsync()
    {
        (EncoderHost, Encoder) = await StoredEmbeddingsEncoder.StartAsync();
        Language = await LoopbackHost.StartAsync(LanguageServiceHost.Build([], builder =>
        {
            LoopbackHost.Settings(new Dictionary<string, string?>
            {
                ["LLark:Language:ModelPath"] = TinyLLark.Directory,
                ["LLark:Language:MaxBatchSize"] = "4",
                ["LLark:Language:EncoderAddress"] = EncoderHost.GrpcAddress.ToString(),
            })(builder);
            builder.Services.AddSingleton<IStartupFilter>(LanguageCalls);
        }));
        await LanguageServiceTests.WaitServing(Language);

        keyFile = Path.Combine(Path.GetTempPath(), $"llark-gateway-keys-{Environment.ProcessId}.txt");
        File.WriteAllText(keyFile, $"# name:sha256 of the key\n\nfromfile:{GatewayTestHost.Sha256Hex(GatewayTestHost.FileKey)}\n");
        var settings = GatewayTestHost.Destinations(Language.GrpcAddress, EncoderHost.GrpcAddress);
        settings["LLark:Gateway:ApiKeys:1:Name"] = "limited";
        settings["LLark:Gateway:ApiKeys:1:Sha256"] = GatewayTestHost.Sha256Hex(GatewayTestHost.LimitedKey);
        settings["LLark:Gateway:ApiKeys:1:RequestsPerSecond"] = "0.1";
        settings["LLark:Gateway:ApiKeys:1:Burst"] = "2";
        settings["LLark:Gateway:ApiKeys:2:Name"] = "narrow";
        settings["LLark:Gateway:ApiKeys:2:Sha256"] = GatewayTestHost.Sha256Hex(GatewayTestHost.NarrowKey);
        settings["LLark:Gateway:ApiKeys:2:MaxConcurrentStreams"] = "1";
        settings["LLark:Gateway:ApiKeys:2:RequestsPerSecond"] = "1000";
        settings["LLark:Gateway:ApiKeys:2:Burst"] = "1000";
        settings["LLark:Gateway:ApiKeysFile"] = keyFile;
        Gateway = await LoopbackHost.StartAsync(GatewayTestHost.Build(settings));
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Language.DisposeAsync();
        await EncoderHost.DisposeAsync();
        File.Delete(keyFile);
    }
}
