using System.Diagnostics.Metrics;

namespace LLark.Gateway;

/// <summary>
/// Meter <c>LLark.Gateway</c> (Prometheus: <c>llark_gateway_requests_total</c>, ...). Tags name routes, statuses,
/// reasons and key names, never keys.
/// </summary>
public sealed class GatewayMetrics
{
    public const string MeterName = "LLark.Gateway";

    private readonly Counter<long> requests;
    private readonly Counter<long> authFailures;
    private readonly Counter<long> rateLimited;
    private readonly Counter<long> retries;

    public GatewayMetrics(IMeterFactory meters)
    {
        Meter meter = meters.Create(MeterName);
        requests = meter.CreateCounter<long>("llark.gateway.requests", "{request}",
            "Calls answered, by route (language, encoder, json-*, health) and status (the gRPC status name, or the HTTP status for plain HTTP).");
        authFailures = meter.CreateCounter<long>("llark.gateway.auth_failures", "{request}",
            "Calls refused UNAUTHENTICATED, by reason (missing or unknown key).");
        rateLimited = meter.CreateCounter<long>("llark.gateway.rate_limited", "{request}",
            "Calls refused RESOURCE_EXHAUSTED, by key name and limit (rate or streams).");
        retries = meter.CreateCounter<long>("llark.gateway.retries", "{attempt}",
            "Attempts sent again after a failure, by route and the failure.");
    }

    public void Request(string route, string status) =>
        requests.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("status", status));

    public void AuthFailed(string reason) => authFailures.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void RateLimited(string key, string limit) =>
        rateLimited.Add(1, new KeyValuePair<string, object?>("key", key), new KeyValuePair<string, object?>("limit", limit));

    public void Retried(string route, string failure) =>
        retries.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("failure", failure));
}
