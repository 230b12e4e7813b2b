using System.ComponentModel.DataAnnotations;
using System.Reflection;
using System.Text.Json.Nodes;
using LLark.Language.Service;
using LLark.ServiceDefaults;
using LLark.Tests.TestSupport;
using Microsoft.Extensions.Configuration;

namespace LLark.Tests.Deploy;

/// <summary>
/// The settings the manifests and images give each service are settings that service reads: environment variables
/// <c>LLark__Section__Key</c> are configuration keys <c>LLark:Section:Key</c>, matched against the options classes.
/// </summary>
/// <remarks>
/// The language service's options are read by reflection from its assembly, and its settings are bound and validated
/// as the host does at start. The encoder service's and the gateway's keys are matched against the names listed in
/// <see cref="EncoderKeys"/> and <see cref="GatewayKeys"/>.
/// </remarks>
[Trait("Category", "Kubectl")]
public sealed class ConfigurationKeyTests
{
    internal static readonly HashSet<string> EncoderKeys = new(StringComparer.Ordinal)
    {
        "ModelPath", "Layers", "Fps", "DType", "Device", "MaxAudioBytes", "MaxQueuedRequests",
        "Cache:MemoryBytes", "Cache:Directory", "Cache:DiskBytes", "Cache:Redis", "Cache:RedisTtl",
    };

    internal static readonly HashSet<string> GatewayKeys = new(StringComparer.Ordinal) { "ApiKeys", "ApiKeysFile" };

    private static readonly string[] Clusters = ["encoder", "language"];

    /// <summary>The settings each service's containers get, by overlay and from each image's own ENV.</summary>
    public static TheoryData<string, string> Sources()
    {
        var data = new TheoryData<string, string>();
        foreach (string overlay in Kustomize.Overlays)
        {
            foreach (string service in new[] { "language", "encoder", "gateway" }) data.Add(overlay, service);
        }
        foreach (string service in new[] { "language", "encoder", "gateway" }) data.Add("image", service);
        return data;
    }

    private static IReadOnlyDictionary<string, string> Settings(string source, string service)
    {
        if (source == "image") return Dockerfile.Load(service).FinalEnv();
        Container c = Kustomize.Overlay(source).Get("Deployment", service).Container(service);
        Assert.Equal(c.EnvNames.Count(), c.EnvNames.Distinct(StringComparer.Ordinal).Count());
        return c.Env;
    }

    private static string Key(string variable) => variable.Replace("__", ":", StringComparison.Ordinal);

    [Theory]
    [MemberData(nameof(Sources))]
    public void EverySettingIsOneTheServiceReads(string source, string service)
    {
        foreach (string variable in Settings(source, service).Keys.Where(k => k.StartsWith("LLark__", StringComparison.Ordinal) || k.StartsWith("ReverseProxy__", StringComparison.Ordinal)))
        {
            string key = Key(variable);
            bool known = key switch
            {
                _ when key.StartsWith("LLark:Listen:", StringComparison.Ordinal) => HasProperty(typeof(ListenOptions), key["LLark:Listen:".Length..]),
                _ when key.StartsWith("LLark:Internal:", StringComparison.Ordinal) => HasProperty(typeof(InternalTokenOptions), key["LLark:Internal:".Length..]),
                _ when key.StartsWith("LLark:Language:", StringComparison.Ordinal) => service == "language" && HasProperty(typeof(LanguageServiceOptions), key["LLark:Language:".Length..]),
                _ when key.StartsWith("LLark:Encoder:", StringComparison.Ordinal) => service == "encoder" && EncoderKeys.Contains(key["LLark:Encoder:".Length..]),
                _ when key.StartsWith("LLark:Gateway:", StringComparison.Ordinal) => service == "gateway" && GatewayKeys.Contains(key["LLark:Gateway:".Length..]),
                _ when key.StartsWith("ReverseProxy:", StringComparison.Ordinal) => service == "gateway" && IsDestinationAddress(key),
                _ => false,
            };
            Assert.True(known, $"{source}: {service} is given {variable}, which it does not read");
        }
    }

    [Theory]
    [MemberData(nameof(Sources))]
    public void EachServiceIsToldWhereToListen(string source, string service)
    {
        var settings = Settings(source, service);
        Assert.Contains("LLark__Listen__GrpcPort", settings.Keys);
        Assert.Contains("LLark__Listen__HttpPort", settings.Keys);
        var listen = Bind<ListenOptions>(settings, ListenOptions.Section);
        Assert.Empty(Validate(listen));
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void TheLanguageSettingsBindAndValidateAsTheHostDoesAtStart(string overlay)
    {
        var settings = Kustomize.Overlay(overlay).Get("Deployment", "language").Container("language").Env;
        LanguageServiceOptions options = Bind<LanguageServiceOptions>(settings, LanguageServiceOptions.Section);
        Assert.Empty(Validate(options));
        Assert.Equal("/models/language", options.ModelPath);
        Assert.Empty(Validate(Bind<LanguageServiceOptions>(Dockerfile.Load("language").FinalEnv(), LanguageServiceOptions.Section)));
    }

    [Fact]
    public void TheGatewayDestinationsReplaceTheOnesItsAppSettingsName()
    {
        // Setting ReverseProxy:Clusters:language:Destinations:pods:Address replaces that destination only if the
        // gateway's appsettings.json calls it "pods" too; under another name it would add a second destination.
        string appsettings = Path.Combine(RepoPaths.Root, "gateway", "LLark.Gateway", "appsettings.json");
        var env = Kustomize.Overlay("prod-gpu").Get("Deployment", "gateway").Container("gateway").Env;
        var destinations = env.Keys.Where(k => k.StartsWith("ReverseProxy__", StringComparison.Ordinal)).Select(k => k.Split("__")).ToList();
        Assert.Equal(Clusters, destinations.Select(d => d[2]).Order(StringComparer.Ordinal));
        if (!File.Exists(appsettings)) return; // the gateway has not landed in this branch yet
        JsonNode clusters = JsonNode.Parse(File.ReadAllText(appsettings))!["ReverseProxy"]!["Clusters"]!;
        foreach (string[] d in destinations)
        {
            JsonObject declared = clusters[d[2]]?["Destinations"]?.AsObject() ?? throw new Xunit.Sdk.XunitException($"no cluster {d[2]} in {appsettings}");
            Assert.Equal(new[] { d[4] }, declared.Select(kv => kv.Key));
        }
    }

    private static bool IsDestinationAddress(string key)
    {
        string[] parts = key.Split(':');
        return parts is ["ReverseProxy", "Clusters", "language" or "encoder", "Destinations", { Length: > 0 }, "Address"];
    }

    private static bool HasProperty(Type type, string path)
    {
        foreach (string part in path.Split(':'))
        {
            PropertyInfo? property = type.GetProperty(part, BindingFlags.Public | BindingFlags.Instance);
            if (property is null) return false;
            type = property.PropertyType;
        }
        return true;
    }

    private static T Bind<T>(IReadOnlyDictionary<string, string> environment, string section) where T : new()
    {
        IConfiguration configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(environment.Select(kv => KeyValuePair.Create(Key(kv.Key), (string?)kv.Value)))
            .Build();
        return configuration.GetSection(section).Get<T>(o => o.ErrorOnUnknownConfiguration = true) ?? new T();
    }

    private static List<ValidationResult> Validate(object options)
    {
        var results = new List<ValidationResult>();
        Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true);
        return results;
    }
}
