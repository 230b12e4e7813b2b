using System.Net;
using System.Net.Sockets;
using LLark.Gateway;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.ServiceDiscovery;

namespace LLark.Tests.Gateway;

public sealed class PodDnsResolverTests
{
    private sealed class Monitor(DnsOptions value) : IOptionsMonitor<DnsOptions>
    {
        public DnsOptions CurrentValue => value;
        public DnsOptions Get(string? name) => value;
        public IDisposable? OnChange(Action<DnsOptions, string?> listener) => null;
    }

    private sealed class Table
    {
        public Dictionary<string, string[]> Records { get; } = [];
        public AddressFamily? AskedFor;

        public Task<IPAddress[]> Lookup(string host, AddressFamily family, CancellationToken cancellationToken)
        {
            AskedFor = family;
            return Records.TryGetValue(host, out string[]? addresses)
                ? Task.FromResult(addresses.Select(IPAddress.Parse).ToArray())
                : throw new SocketException((int)SocketError.HostNotFound);
        }
    }

    private static (PodDnsResolver Resolver, Table Dns) Create()
    {
        var table = new Table();
        var options = new DnsOptions { RefreshPeriod = TimeSpan.FromSeconds(10), FailureRetry = TimeSpan.FromMilliseconds(200) };
        return (new PodDnsResolver(new Monitor(options), table.Lookup, NullLogger<PodDnsResolver>.Instance), table);
    }

    private static readonly Dictionary<string, DestinationConfig> Headless = new()
    {
        ["pods"] = new DestinationConfig { Address = "http://llark-language:5001/", Health = "http://llark-language:5001/" },
    };

    [Fact]
    public async Task AHeadlessNameBecomesOneDestinationPerAddressKeepingTheNameAsHost()
    {
        var (resolver, dns) = Create();
        dns.Records["llark-language"] = ["10.0.0.7", "10.0.0.5"];
        ResolvedDestinationCollection resolved = await resolver.ResolveDestinationsAsync(Headless, default);
        Assert.Equal(["pods[10.0.0.5]", "pods[10.0.0.7]"], resolved.Destinations.Keys.Order(StringComparer.Ordinal));
        DestinationConfig pod = resolved.Destinations["pods[10.0.0.5]"];
        Assert.Equal("http://10.0.0.5:5001/", pod.Address);
        Assert.Equal("http://10.0.0.5:5001/", pod.Health);
        Assert.Equal("llark-language:5001", pod.Host);
        Assert.Equal(AddressFamily.InterNetwork, dns.AskedFor);
        Assert.False(resolved.ChangeToken!.HasChanged);
    }

    [Fact]
    public async Task AddressesGivenAsIpsAreLeftAlone()
    {
        var (resolver, dns) = Create();
        var destinations = new Dictionary<string, DestinationConfig> { ["one"] = new() { Address = "http://127.0.0.1:5001" } };
        ResolvedDestinationCollection resolved = await resolver.ResolveDestinationsAsync(destinations, default);
        Assert.Same(destinations["one"], resolved.Destinations["one"]);
        Assert.Null(dns.AskedFor);
    }

    [Fact]
    public async Task AFailedLookupKeepsTheLastGoodPodsAndIsRetriedSoon()
    {
        var (resolver, dns) = Create();

        // Before any pod is ready the name has no records: the gateway still starts, with the name as the destination.
        ResolvedDestinationCollection none = await resolver.ResolveDestinationsAsync(Headless, default);
        Assert.Equal("http://llark-language:5001/", Assert.Single(none.Destinations).Value.Address);
        for (int i = 0; i < 100 && !none.ChangeToken!.HasChanged; i++) await Task.Delay(10);
        Assert.True(none.ChangeToken!.HasChanged);

        dns.Records["llark-language"] = ["10.0.0.5", "10.0.0.6"];
        Assert.Equal(2, (await resolver.ResolveDestinationsAsync(Headless, default)).Destinations.Count);

        dns.Records.Clear();
        ResolvedDestinationCollection kept = await resolver.ResolveDestinationsAsync(Headless, default);
        Assert.Equal(["pods[10.0.0.5]", "pods[10.0.0.6]"], kept.Destinations.Keys.Order(StringComparer.Ordinal));

        dns.Records["llark-language"] = ["10.0.0.6"];
        Assert.Equal("pods[10.0.0.6]", Assert.Single((await resolver.ResolveDestinationsAsync(Headless, default)).Destinations).Key);
    }
}
