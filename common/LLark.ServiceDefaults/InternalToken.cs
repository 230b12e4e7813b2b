using System.ComponentModel.DataAnnotations;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace LLark.ServiceDefaults;

/// <summary>
/// Section <c>LLark:Internal</c> (environment <c>LLARK__INTERNAL__TOKENFILE</c>, ...): the secret the model services
/// share with the gateway, so that a caller who reaches a pod without passing the gateway is refused. The model
/// services require it of every call but health's; the gateway and the language service (calling the encoder) send
/// it in <see cref="Header"/>.
/// </summary>
public sealed class InternalTokenOptions : IValidatableObject
{
    public const string Section = "LLark:Internal";

    /// <summary>The request header that carries the token.</summary>
    public const string Header = "x-llark-internal-token";

    /// <summary>The token; default unset. A mounted Secret (<see cref="TokenFile"/>) keeps it out of the environment.</summary>
    public string? Token { get; set; }

    /// <summary>A file holding the token (surrounding whitespace ignored); default unset. Used when <see cref="Token"/> is unset.</summary>
    public string? TokenFile { get; set; }

    /// <summary>The token from either source; null when neither is set.</summary>
    public string? Resolve() =>
        Token is { Length: > 0 } token ? token : TokenFile is { Length: > 0 } file ? File.ReadAllText(file).Trim() : null;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Token is not { Length: > 0 } && TokenFile is { Length: > 0 } file && !File.Exists(file))
        {
            yield return new ValidationResult($"TokenFile '{file}' does not exist", [nameof(TokenFile)]);
            yield break;
        }
        if (Resolve() is { Length: < 16 })
            yield return new ValidationResult("the internal token is shorter than 16 characters", [nameof(Token)]);
    }
}

public static class InternalTokenExtensions
{
    /// <summary>
    /// For a model service: every gRPC call but health's must carry the internal token when one is configured, and a
    /// service bound to anything but loopback refuses to start without one.
    /// </summary>
    public static WebApplicationBuilder RequireInternalToken(this WebApplicationBuilder builder)
    {
        var listen = builder.Configuration.GetSection(ListenOptions.Section).Get<ListenOptions>() ?? new ListenOptions();
        builder.Services.AddOptions<InternalTokenOptions>().Bind(builder.Configuration.GetSection(InternalTokenOptions.Section))
            .ValidateDataAnnotations()
            .Validate(o => IsLoopback(listen.Address) || o.Resolve() is not null,
                $"LLark:Listen:Address {listen.Address} is reachable from other machines: set LLark:Internal:Token or TokenFile, the token the gateway sends")
            .ValidateOnStart();
        builder.Services.Configure<Grpc.AspNetCore.Server.GrpcServiceOptions>(o => o.Interceptors.Add<InternalTokenCheck>());
        return builder;
    }

    /// <summary>The configured token, for a caller that must send it; null when none is configured.</summary>
    public static string? InternalToken(this IConfiguration configuration) =>
        configuration.GetSection(InternalTokenOptions.Section).Get<InternalTokenOptions>()?.Resolve();

    private static bool IsLoopback(string address) => IPAddress.TryParse(address, out IPAddress? ip) && IPAddress.IsLoopback(ip);
}

/// <summary>Refuses with UNAUTHENTICATED a call without the internal token; health stays open for probes.</summary>
internal sealed class InternalTokenCheck(IOptions<InternalTokenOptions> options) : Interceptor
{
    private readonly byte[]? expected = options.Value.Resolve() is { } token ? Encoding.UTF8.GetBytes(token) : null;

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Check(ServerCallContext context)
    {
        if (expected is null || context.Method.StartsWith("/grpc.health.v1.Health/", StringComparison.Ordinal)) return;
        string? sent = context.RequestHeaders.GetValue(InternalTokenOptions.Header);
        if (sent is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(sent), expected)) return;
        throw new RpcException(new Status(StatusCode.Unauthenticated,
            "this service answers the gateway only: call it through the gateway (the internal token is missing or wrong)"));
    }
}

/// <summary>Sends the internal token with every call of a client to a model service.</summary>
public sealed class InternalTokenSender(string token) : Interceptor
{
    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context,
        AsyncUnaryCallContinuation<TRequest, TResponse> continuation) => continuation(request, WithToken(context));

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(TRequest request,
        ClientInterceptorContext<TRequest, TResponse> context, AsyncServerStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(request, WithToken(context));

    public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(
        ClientInterceptorContext<TRequest, TResponse> context, AsyncClientStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(WithToken(context));

    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(
        ClientInterceptorContext<TRequest, TResponse> context, AsyncDuplexStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(WithToken(context));

    private ClientInterceptorContext<TRequest, TResponse> WithToken<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context)
        where TRequest : class where TResponse : class
    {
        var headers = new Metadata();
        if (context.Options.Headers is { } given)
        {
            foreach (Metadata.Entry entry in given)
            {
                if (!string.Equals(entry.Key, InternalTokenOptions.Header, StringComparison.OrdinalIgnoreCase)) headers.Add(entry);
            }
        }
        headers.Add(InternalTokenOptions.Header, token);
        return new ClientInterceptorContext<TRequest, TResponse>(context.Method, context.Host, context.Options.WithHeaders(headers));
    }
}
