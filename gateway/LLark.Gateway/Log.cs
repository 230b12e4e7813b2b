namespace LLark.Gateway;

internal static partial class Log
{
    [LoggerMessage(EventId = 3000, Level = LogLevel.Information, Message = "Gateway serving: {Keys} API keys, clusters {Clusters}")]
    public static partial void Serving(ILogger logger, int keys, string clusters);

    [LoggerMessage(EventId = 3100, Level = LogLevel.Warning, Message = "Refused {Path}: {Reason} API key (from {Remote}; its next refusals for {IntervalSeconds:F0} s are counted, not logged)")]
    public static partial void Unauthenticated(ILogger logger, string path, string reason, string remote, double intervalSeconds);

    [LoggerMessage(EventId = 3101, Level = LogLevel.Information, Message = "Refused {Path} for key {Key}: over its {Limit} limit, retry in {RetryAfterMs:F0} ms")]
    public static partial void RateLimited(ILogger logger, string key, string limit, string path, double retryAfterMs);

    [LoggerMessage(EventId = 3200, Level = LogLevel.Warning, Message = "Retrying {Path} on route {Route} after attempt {Attempt} to {Destination} failed: {Failure}")]
    public static partial void Retrying(ILogger logger, string route, string path, int attempt, string destination, string failure);

    [LoggerMessage(EventId = 3201, Level = LogLevel.Warning, Message = "Forwarding {Path} on route {Route} failed: {Error}: {Detail}")]
    public static partial void ForwardingFailed(ILogger logger, string route, string path, Yarp.ReverseProxy.Forwarder.ForwarderError error, string detail);

    [LoggerMessage(EventId = 3202, Level = LogLevel.Warning, Message = "JSON front: {Cluster} destination {Destination} refused a connection for {Path}, trying another: {Detail}")]
    public static partial void JsonFrontRetrying(ILogger logger, string cluster, string path, string destination, string detail);

    [LoggerMessage(EventId = 3203, Level = LogLevel.Information, Message = "SSE caller went away; the Generate call was cancelled")]
    public static partial void SseCallerLeft(ILogger logger);

    [LoggerMessage(EventId = 3300, Level = LogLevel.Information, Message = "Destination {Destination}: {Host} resolves to {Count} pods ({Addresses})")]
    public static partial void DestinationsResolved(ILogger logger, string destination, string host, int count, string addresses);

    [LoggerMessage(EventId = 3301, Level = LogLevel.Warning, Message = "Destination {Destination}: looking up {Host} failed ({Error}); keeping {Count} destinations, retrying in {RetrySeconds:F1} s")]
    public static partial void LookupFailed(ILogger logger, string destination, string host, string error, int count, double retrySeconds);
}
