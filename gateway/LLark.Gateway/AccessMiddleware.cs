using System.Globalization;
using Grpc.Core;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Yarp.ReverseProxy.Model;

namespace LLark.Gateway;

/// <summary>
/// Every call but the probes' needs a known key and room under that key's limits; the refusal is answered here, so
/// nothing unauthenticated or over the limit reaches a model. What needs no key is bounded per remote address
/// (<see cref="AnonymousLimits"/>). Counts every call by route and status on the way out.
/// </summary>
public sealed class AccessMiddleware(RequestDelegate next, ApiKeyStore keys, KeyLimiters limiters, AnonymousLimits anonymous,
    GatewayMetrics metrics, ILogger<AccessMiddleware> logger)
{
    /// <summary>The key a call was let in with, for the endpoints behind.</summary>
    public sealed record Caller(ApiKey Key);

    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await Admit(context).ConfigureAwait(false);
        }
        finally
        {
            metrics.Request(RouteName(context), StatusName(context));
        }
    }

    private async Task Admit(HttpContext context)
    {
        string remote = context.Connection.RemoteIpAddress?.ToString() ?? "";
        if (IsOpen(context.Request))
        {
            if (!context.Request.Path.Equals(HealthWatch, StringComparison.Ordinal))
            {
                await next(context).ConfigureAwait(false);
                return;
            }
            using System.Threading.RateLimiting.RateLimitLease? watch = anonymous.TryWatch(remote);
            if (watch is null)
            {
                await CallerErrors.WriteAsync(context, StatusCode.ResourceExhausted, string.Create(CultureInfo.InvariantCulture,
                    $"this address already has {anonymous.Options.MaxHealthWatches} health watches open"), TimeSpan.FromSeconds(1)).ConfigureAwait(false);
                return;
            }
            await next(context).ConfigureAwait(false);
            return;
        }

        (ApiKey? key, string? failure) = keys.Authenticate(context.Request.Headers);
        if (key is null)
        {
            metrics.AuthFailed(failure!);
            (bool within, TimeSpan retryAfter) = anonymous.Refusal(remote);
            if (!within)
            {
                await CallerErrors.WriteAsync(context, StatusCode.ResourceExhausted, "too many calls without a valid API key from this address",
                    retryAfter).ConfigureAwait(false);
                return;
            }
            if (anonymous.LogsRefusal(remote))
                Log.Unauthenticated(logger, context.Request.Path.Value ?? "", failure!, remote, anonymous.Options.LogInterval.TotalSeconds);
            string message = failure == "missing"
                ? "no API key: send 'authorization: Bearer KEY' or 'x-api-key: KEY'"
                : "unknown API key";
            await CallerErrors.WriteAsync(context, StatusCode.Unauthenticated, message).ConfigureAwait(false);
            return;
        }

        (System.Threading.RateLimiting.RateLimitLease? lease, KeyLimiters.Refusal? refused) = limiters.TryAcquire(key);
        if (refused is { } refusal)
        {
            metrics.RateLimited(key.Name, refusal.Limit);
            Log.RateLimited(logger, key.Name, refusal.Limit, context.Request.Path.Value ?? "", refusal.RetryAfter.TotalMilliseconds);
            string message = refusal.Limit == "rate"
                ? string.Create(CultureInfo.InvariantCulture, $"key '{key.Name}' is over its rate of {key.Limits.RequestsPerSecond} calls/s (burst {key.Limits.Burst})")
                : string.Create(CultureInfo.InvariantCulture, $"key '{key.Name}' already has {key.Limits.MaxConcurrentStreams} calls in flight");
            await CallerErrors.WriteAsync(context, StatusCode.ResourceExhausted, message, refusal.RetryAfter).ConfigureAwait(false);
            return;
        }

        using (lease)
        {
            context.Features.Set(new Caller(key));
            if (context.GetEndpoint() is null && CallerErrors.IsGrpc(context.Request))
            {
                await CallerErrors.WriteGrpcAsync(context.Response, StatusCode.Unimplemented,
                    $"the gateway routes no service at {context.Request.Path}").ConfigureAwait(false);
                return;
            }
            if (CallerErrors.IsGrpc(context.Request) && context.Features.Get<IHttpMinRequestBodyDataRateFeature>() is { } rate)
            {
                // As gRPC servers do: a client stream may pause between messages for as long as it likes.
                rate.MinDataRate = null;
            }
            await next(context).ConfigureAwait(false);
        }
    }

    private const string HealthWatch = "/grpc.health.v1.Health/Watch";

    /// <summary>
    /// Probes and scrapes: the gateway's own gRPC health, /healthz and /metrics; and the try page's own files, by exact
    /// path and GET or HEAD only, since a browser loads them before anyone has typed a key.
    /// </summary>
    private static bool IsOpen(HttpRequest request) =>
        request.Path.StartsWithSegments("/grpc.health.v1.Health", StringComparison.Ordinal)
        || request.Path.Equals("/healthz", StringComparison.Ordinal)
        || request.Path.Equals("/metrics", StringComparison.Ordinal)
        || TryPage.Serves(request);

    private static string RouteName(HttpContext context)
    {
        Endpoint? endpoint = context.GetEndpoint();
        if (endpoint?.Metadata.GetMetadata<RouteModel>() is { } proxied) return proxied.Config.RouteId;
        if (endpoint?.Metadata.GetMetadata<IEndpointNameMetadata>() is { } named) return named.EndpointName;
        if (context.Request.Path.StartsWithSegments("/grpc.health.v1.Health", StringComparison.Ordinal)
            || context.Request.Path.Equals("/healthz", StringComparison.Ordinal)) return "health";
        return endpoint is null ? "none" : "other";
    }

    /// <summary>grpc-status from the trailers (or the headers of a trailers-only answer) for gRPC; the HTTP status otherwise.</summary>
    private static string StatusName(HttpContext context)
    {
        if (!CallerErrors.IsGrpc(context.Request)) return context.Response.StatusCode.ToString(CultureInfo.InvariantCulture);
        string? status = context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers["grpc-status"];
        if (string.IsNullOrEmpty(status)) status = context.Response.Headers["grpc-status"];
        if (int.TryParse(status, NumberStyles.None, CultureInfo.InvariantCulture, out int code)) return CallerErrors.StatusName((StatusCode)code);
        return context.RequestAborted.IsCancellationRequested ? "CANCELLED" : "http_" + context.Response.StatusCode.ToString(CultureInfo.InvariantCulture);
    }
}
