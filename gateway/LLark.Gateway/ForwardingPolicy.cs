using System.Net.Http;
using Grpc.Core;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace LLark.Gateway;

/// <summary>
/// The first step of YARP's proxy pipeline, around load balancing and forwarding: sends an attempt that failed again
/// when that is safe (on another pod if there is one), and turns a failure that is final into a gRPC status instead of
/// YARP's bare 502/503/504.
/// </summary>
/// <remarks>
/// Safe means: the attempt never got a connection (nothing of the call left the gateway), whatever the method; or the
/// method is idempotent (<see cref="RetryOptions.IdempotentMethods"/>, its body buffered so it can be sent again).
/// Either way only before any of the answer has gone back to the caller, so a Generate that has started streaming is
/// never repeated. A gRPC answer that had started and broke because its backend went away ends with UNAVAILABLE in the
/// trailers, not with the HTTP/2 reset YARP would send, which reaches gRPC clients as CANCELLED, their own cancel.
/// </remarks>
public sealed class ForwardingPolicy(IOptions<GatewayOptions> options, GatewayMetrics metrics, ILogger<ForwardingPolicy> logger)
{
    private readonly HashSet<string> idempotent = new(options.Value.Retry.IdempotentMethods, StringComparer.Ordinal);

    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        RetryOptions retry = options.Value.Retry;
        IReverseProxyFeature proxy = context.GetReverseProxyFeature();
        IReadOnlyList<DestinationState> candidates = proxy.AvailableDestinations;
        string route = proxy.Route.Config.RouteId;
        bool repeatable = retry.MaxAttempts > 1 && idempotent.Contains(context.Request.Path.Value ?? "");
        // Around BodyLimit's cap, which so counts the caller's bytes once however often the buffer is sent again.
        if (repeatable) context.Request.EnableBuffering(bufferThreshold: 1 << 20);
        HeldReset? held = null;
        if (CallerErrors.IsGrpc(context.Request) && context.Features.Get<IHttpResetFeature>() is { } reset)
            context.Features.Set<IHttpResetFeature>(held = new HeldReset(reset));
        var failed = new List<DestinationState>();

        for (int attempt = 1; ; attempt++)
        {
            await next().ConfigureAwait(false);
            if (context.Features.Get<IForwarderErrorFeature>() is not { } error) return;
            if (proxy.ProxiedDestination is { } destination) failed.Add(destination);
            bool connectFailure = NeverConnected(error);
            if (attempt >= retry.MaxAttempts || context.Response.HasStarted || context.RequestAborted.IsCancellationRequested
                || !(connectFailure || (repeatable && error.Error is ForwarderError.Request or ForwarderError.ResponseHeaders or ForwarderError.ResponseBodyDestination)))
            {
                await Fail(context, proxy, route, error, held).ConfigureAwait(false);
                return;
            }

            string failure = connectFailure ? "connect" : error.Error.ToString();
            metrics.Retried(route, failure);
            Log.Retrying(logger, route, context.Request.Path.Value ?? "", attempt, proxy.ProxiedDestination?.DestinationId ?? "", failure);
            context.Features.Set<IForwarderErrorFeature>(null);
            context.Response.Clear();
            if (repeatable) context.Request.Body.Position = 0;
            DestinationState[] others = [.. candidates.Where(d => !failed.Contains(d))];
            proxy.AvailableDestinations = others.Length > 0 ? others : candidates;
            try
            {
                await Task.Delay(retry.Backoff * attempt, context.RequestAborted).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>No connection was made, so no byte of the call reached a backend.</summary>
    private static bool NeverConnected(IForwarderErrorFeature error)
    {
        if (error.Error != ForwarderError.Request) return false;
        for (Exception? e = error.Exception; e is not null; e = e.InnerException)
        {
            if (e is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError })
                return true;
        }
        return false;
    }

    private Task Fail(HttpContext context, IReverseProxyFeature proxy, string route, IForwarderErrorFeature error, HeldReset? held)
    {
        if (held?.ErrorCode is { } resetCode)
        {
            if (error.Error is ForwarderError.ResponseBodyDestination or ForwarderError.RequestBodyDestination && !context.RequestAborted.IsCancellationRequested)
            {
                Log.ForwardingFailed(logger, route, context.Request.Path.Value ?? "", error.Error, Innermost(error.Exception));
                context.Response.AppendTrailer("grpc-status", ((int)StatusCode.Unavailable).ToString(System.Globalization.CultureInfo.InvariantCulture));
                context.Response.AppendTrailer("grpc-message", CallerErrors.PercentEncode(
                    $"the {route} service's stream broke mid-call (its backend went away); the call may be retried"));
                return Task.CompletedTask;
            }
            held.Inner.Reset(resetCode);
            return Task.CompletedTask;
        }
        // The route's Timeout ends the call through RequestAborted too; only a caller that went away needs no answer.
        bool routeTimedOut = context.Features.Get<IHttpRequestTimeoutFeature>()?.RequestTimeoutToken.IsCancellationRequested == true;
        if (context.Response.HasStarted || (context.RequestAborted.IsCancellationRequested && !routeTimedOut)) return Task.CompletedTask;
        (StatusCode code, string message) = error.Error switch
        {
            _ when routeTimedOut => (StatusCode.DeadlineExceeded, $"the call took longer than the {route} route's timeout"),
            _ when BodyLimit.Exceeded(error) => (StatusCode.ResourceExhausted, BodyLimit.Refusal(proxy.Route.Config)),
            ForwarderError.NoAvailableDestinations => (StatusCode.Unavailable, $"no {route} backend is available"),
            ForwarderError.RequestTimedOut => (StatusCode.DeadlineExceeded, $"the {route} backend did not answer in time"),
            // The caller is told which service; the pod's address and the socket error stay in the gateway's log.
            _ => (StatusCode.Unavailable, $"the {route} service is unavailable; retry shortly"),
        };
        string detail = Innermost(error.Exception);
        Log.ForwardingFailed(logger, route, context.Request.Path.Value ?? "", error.Error, detail);
        return CallerErrors.WriteAsync(context, code, message);
    }

    private static string Innermost(Exception? e)
    {
        while (e?.InnerException is not null) e = e.InnerException;
        return e?.Message ?? "no detail";
    }

    /// <summary>
    /// Holds back the reset YARP sends when a started answer breaks, so that <see cref="Fail"/> can end a gRPC call with
    /// a status instead; a reset it does not replace is sent afterwards as YARP asked for it.
    /// </summary>
    private sealed class HeldReset(IHttpResetFeature inner) : IHttpResetFeature
    {
        public IHttpResetFeature Inner { get; } = inner;

        public int? ErrorCode { get; private set; }

        public void Reset(int errorCode) => ErrorCode = errorCode;
    }
}
