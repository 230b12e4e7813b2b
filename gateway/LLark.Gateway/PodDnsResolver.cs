using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.ServiceDiscovery;

namespace LLark.Gateway;

/// <summary>Looks a host name up; DNS in production, a table in tests.</summary>
public delegate Task<IPAddress[]> HostLookup(string host, AddressFamily family, CancellationToken cancellationToken);

/// <summary>
/// One destination per pod: a destination whose address names a host (a headless Service) becomes one destination per
/// address it resolves to, <c>pods[10.1.2.3]</c>, keeping the name as its Host so the backend still sees it, and the
/// lookup is repeated every <see cref="DnsOptions.RefreshPeriod"/> to follow pods that come and go.
/// </summary>
/// <remarks>
/// YARP 2.3 has a DNS resolver of its own (<c>AddDnsDestinationResolver</c>), but a failed lookup there fails the whole
/// configuration: at start the gateway does not start (a headless Service has no records until a pod is ready, which
/// for a 13 GB model is minutes), and on a refresh YARP waits five minutes before trying again. Here a failed lookup
/// keeps the last good answer (before any, the name itself, so calls fail as UNAVAILABLE at connect) and is retried
/// after <see cref="DnsOptions.FailureRetry"/>.
/// </remarks>
public sealed class PodDnsResolver(IOptionsMonitor<DnsOptions> options, HostLookup lookup, ILogger<PodDnsResolver> logger) : IDestinationResolver
{
    private readonly ConcurrentDictionary<string, KeyValuePair<string, DestinationConfig>[]> lastGood = new(StringComparer.Ordinal);

    public static Task<IPAddress[]> Dns(string host, AddressFamily family, CancellationToken cancellationToken) =>
        System.Net.Dns.GetHostAddressesAsync(host, family, cancellationToken);

    public async ValueTask<ResolvedDestinationCollection> ResolveDestinationsAsync(IReadOnlyDictionary<string, DestinationConfig> destinations,
        CancellationToken cancellationToken)
    {
        DnsOptions dns = options.CurrentValue;
        var resolved = new Dictionary<string, DestinationConfig>(StringComparer.OrdinalIgnoreCase);
        bool anyFailed = false;
        foreach ((string id, DestinationConfig config) in destinations)
        {
            var uri = new Uri(config.Address);
            if (uri.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6)
            {
                resolved[id] = config;
                continue;
            }
            string key = id + " " + config.Address;
            KeyValuePair<string, DestinationConfig>[] expanded;
            try
            {
                IPAddress[] addresses = await lookup(uri.DnsSafeHost, dns.AddressFamily, cancellationToken).ConfigureAwait(false);
                if (addresses.Length == 0) throw new SocketException((int)SocketError.HostNotFound);
                expanded = Expand(id, config, uri, addresses);
                KeyValuePair<string, DestinationConfig>[]? previous = lastGood.GetValueOrDefault(key);
                if (previous is null || !previous.Select(p => p.Key).SequenceEqual(expanded.Select(e => e.Key)))
                {
                    string list = string.Join(' ', addresses.Order(AddressOrder.Instance));
                    Log.DestinationsResolved(logger, id, uri.DnsSafeHost, expanded.Length, list);
                }
                lastGood[key] = expanded;
            }
            catch (SocketException e)
            {
                anyFailed = true;
                expanded = lastGood.GetValueOrDefault(key) ?? [new(id, config)];
                Log.LookupFailed(logger, id, uri.DnsSafeHost, e.SocketErrorCode.ToString(), expanded.Length, dns.FailureRetry.TotalSeconds);
            }
            foreach ((string name, DestinationConfig destination) in expanded) resolved[name] = destination;
        }
        // The source cancels itself (and lets go of its timer) when the period is up.
        var refresh = new CancellationTokenSource(anyFailed ? dns.FailureRetry : dns.RefreshPeriod);
        return new ResolvedDestinationCollection(resolved, new CancellationChangeToken(refresh.Token));
    }

    private static KeyValuePair<string, DestinationConfig>[] Expand(string id, DestinationConfig config, Uri uri, IPAddress[] addresses)
    {
        string host = config.Host is { Length: > 0 } h ? h : uri.Authority;
        return [.. addresses.Distinct().Order(AddressOrder.Instance).Select(address =>
        {
            var builder = new UriBuilder(uri) { Host = address.ToString() };
            string? health = config.Health is { Length: > 0 } probe ? new UriBuilder(probe) { Host = address.ToString() }.Uri.ToString() : config.Health;
            return new KeyValuePair<string, DestinationConfig>($"{id}[{address}]", config with { Address = builder.Uri.ToString(), Host = host, Health = health });
        })];
    }

    private sealed class AddressOrder : IComparer<IPAddress>
    {
        public static readonly AddressOrder Instance = new();

        public int Compare(IPAddress? x, IPAddress? y) =>
            x is null || y is null ? Comparer<object>.Default.Compare(x, y) : x.GetAddressBytes().AsSpan().SequenceCompareTo(y.GetAddressBytes());
    }
}
