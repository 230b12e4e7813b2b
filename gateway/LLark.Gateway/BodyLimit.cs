using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace LLark.Gateway;

/// <summary>
/// A proxied call's request body is held to its route's MaxRequestBodySize. Kestrel enforces that limit for most calls,
/// but not for gRPC ones: YARP lifts it for gRPC over HTTP/2 (a call may stream for long), and the Generate key reader
/// reads a body before YARP would set it. So the first step of the proxy pipeline (<see cref="InvokeAsync"/>) takes a gRPC call's
/// limit over from Kestrel for the whole call; a body over it fails as Kestrel's would, and <see cref="ForwardingPolicy"/>
/// answers every such failure, Kestrel's or this one's, with RESOURCE_EXHAUSTED naming the limit.
/// </summary>
public static class BodyLimit
{
    public static Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        if (CallerErrors.IsGrpc(context.Request)) TakeOver(context);
        return next();
    }

    /// <summary>The limit settled for a gRPC call, so that its body may be read before YARP forwards it; null for any other call.</summary>
    public static Settled? Of(HttpContext context) => context.Features.Get<Settled>();

    /// <param name="MessageLimit">
    /// How much of one message the gateway may hold to look into it: the route's limit, which caps the body; the server's
    /// when the route sets none (Kestrel's limit, one gRPC message); none when the route turns limits off.
    /// </param>
    public sealed record Settled(long? MessageLimit);

    private static void TakeOver(HttpContext context)
    {
        long? configured = context.GetReverseProxyFeature().Route.Config.MaxRequestBodySize;
        IHttpMaxRequestBodySizeFeature? size = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        long? messageLimit = configured switch { -1 => null, null => size?.MaxRequestBodySize, _ => configured };
        // A body keeps the limit it was first read under, so it is lifted before anything reads the body. Where the
        // route sets none, the call stays uncapped, as YARP would leave it: the server's limit is one message's, and a
        // stream may send many.
        if (size is { IsReadOnly: false })
        {
            size.MaxRequestBodySize = null;
            context.Features.Set<IHttpMaxRequestBodySizeFeature>(new LiftedBodyLimit());
        }
        if (configured is > 0 and long limit) context.Request.Body = new CappedBody(context.Request.Body, limit);
        context.Features.Set(new Settled(messageLimit));
    }

    /// <summary>The caller's body passed the limit (Kestrel's or the cap stopped reading it): the caller's fault, not the backend's.</summary>
    public static bool Exceeded(IForwarderErrorFeature error)
    {
        if (error.Error is not (ForwarderError.RequestBodyClient or ForwarderError.Request)) return false;
        for (Exception? e = error.Exception; e is not null; e = e.InnerException)
        {
            if (e is BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge }) return true;
        }
        return false;
    }

    public static string Refusal(RouteConfig route) =>
        $"the request is larger than the {route.RouteId} route's limit of {route.MaxRequestBodySize} bytes; send a smaller clip, or embed it once and ask by embedding_id";

    /// <summary>
    /// Stands in for the server's feature once the limit is lifted. The server's turns read-only when the body is read,
    /// and YARP, which sets the route's limit before forwarding (and lifts it for gRPC over HTTP/2), would log a warning
    /// on every call whose body was read first that it could not; what it sets changes nothing, as the cap holds.
    /// </summary>
    private sealed class LiftedBodyLimit : IHttpMaxRequestBodySizeFeature
    {
        public bool IsReadOnly => false;

        public long? MaxRequestBodySize
        {
            get => null;
            set
            {
            }
        }
    }

    /// <summary>
    /// A request body that fails as Kestrel's own limit does (413) once more than the limit has been read. It is the
    /// caller's bytes that count: a body buffered to be sent again is buffered around this, and replayed from there.
    /// </summary>
    private sealed class CappedBody(Stream inner, long limit) : ForwardOnlyStream
    {
        private long read;

        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Count(await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));

        private int Count(int n)
        {
            read += n;
            if (read > limit) throw new BadHttpRequestException($"the request body is larger than {limit} bytes", StatusCodes.Status413PayloadTooLarge);
            return n;
        }
    }
}
