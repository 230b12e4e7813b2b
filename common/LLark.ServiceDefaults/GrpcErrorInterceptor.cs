using System.Globalization;
using Grpc.Core;
using Grpc.Core.Interceptors;
using LLark.Common;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LLark.ServiceDefaults;

/// <summary>How a host turns one exception type of its own (an engine's, a domain's) into the status its callers see.</summary>
public sealed class GrpcErrorMapping(Type exceptionType, Func<Exception, RpcException> toStatus)
{
    internal Type ExceptionType { get; } = exceptionType;

    internal Func<Exception, RpcException> ToStatus { get; } = toStatus;
}

public static class GrpcErrorMappingExtensions
{
    /// <summary>Maps <typeparamref name="TException"/> (and types derived from it) to a status for every gRPC call of the host.</summary>
    public static IServiceCollection AddGrpcErrorMapping<TException>(this IServiceCollection services, Func<TException, RpcException> toStatus)
        where TException : Exception =>
        services.AddSingleton(new GrpcErrorMapping(typeof(TException), e => toStatus((TException)e)));
}

/// <summary>
/// Turns what a handler throws into a real status: what the caller got wrong or what is temporarily unavailable is
/// logged as refused and answered with its status (the shared exceptions here, or a host's own through
/// <see cref="GrpcErrorMapping"/>); anything else is a server bug, logged with its stack and answered INTERNAL.
/// </summary>
public sealed class GrpcErrorInterceptor(IEnumerable<GrpcErrorMapping> mappings, ILogger<GrpcErrorInterceptor> logger) : Interceptor
{
    private readonly GrpcErrorMapping[] mappings = [.. mappings];

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw Failure(context, e);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(requestStream, context).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw Failure(context, e);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw Failure(context, e);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw Failure(context, e);
        }
    }

    private RpcException Failure(ServerCallContext context, Exception e)
    {
        string method = context.Method[(context.Method.LastIndexOf('/') + 1)..];
        if (e is OperationCanceledException && context.CancellationToken.IsCancellationRequested)
        {
            // The caller left or its deadline passed; gRPC has already ended the call with that status.
            return new RpcException(context.Deadline <= DateTime.UtcNow
                ? new Status(StatusCode.DeadlineExceeded, "the deadline passed")
                : new Status(StatusCode.Cancelled, "the call was cancelled"));
        }
        if (ToStatus(e) is { } status)
        {
            Log.Refused(logger, method, status.StatusCode, status.Status.Detail);
            return status;
        }
        Log.Failed(logger, e, method);
        return new RpcException(new Status(StatusCode.Internal, $"{method} failed on the server; see its logs"));
    }

    /// <summary>The status for what the caller got wrong or what is temporarily unavailable; null for a server bug.</summary>
    private RpcException? ToStatus(Exception e)
    {
        switch (e)
        {
            case RpcException rpc:
                return rpc;
            case InvalidRequestException invalid:
                return new RpcException(new Status(StatusCode.InvalidArgument, $"{invalid.Field}: {invalid.Message}"));
            case QueueFullException full:
                return new RpcException(new Status(StatusCode.ResourceExhausted, full.Message),
                    new Metadata { { "grpc-retry-pushback-ms", ((long)full.RetryAfter.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) } });
        }
        foreach (GrpcErrorMapping mapping in mappings)
        {
            if (mapping.ExceptionType.IsInstanceOfType(e)) return mapping.ToStatus(e);
        }
        return null;
    }
}
