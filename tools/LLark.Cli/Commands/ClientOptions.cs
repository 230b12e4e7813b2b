using System.CommandLine;
using Grpc.Core;
using Grpc.Net.Client;

namespace LLark.Cli.Commands;

/// <summary>How the client verbs reach the gateway: <c>--address</c> / <c>LLARK_ADDRESS</c>, <c>--api-key</c> / <c>LLARK_API_KEY</c>.</summary>
internal sealed class ClientOptions
{
    public const string DefaultAddress = "http://127.0.0.1:5000";

    public Option<string?> Address { get; } = new("--address", "--gateway") { Description = $"gateway URL (default: $LLARK_ADDRESS or {DefaultAddress})" };

    public Option<string?> ApiKey { get; } = new("--api-key") { Description = "API key (default: $LLARK_API_KEY)" };

    public void AddTo(Command command)
    {
        command.Options.Add(Address);
        command.Options.Add(ApiKey);
    }

    public GrpcChannel Channel(ParseResult parse) =>
        ChannelFor(parse.GetValue(Address) ?? Environment.GetEnvironmentVariable("LLARK_ADDRESS") ?? DefaultAddress,
            parse.GetValue(ApiKey) ?? Environment.GetEnvironmentVariable("LLARK_API_KEY"));

    /// <summary>A channel to <paramref name="address"/> that sends <paramref name="key"/> (when given) as a bearer token on every call.</summary>
    public static GrpcChannel ChannelFor(string address, string? key)
    {
        if (!Uri.TryCreate(address, UriKind.Absolute, out Uri? uri) || uri.Scheme is not ("http" or "https"))
            throw new UsageException($"address '{address}' is not an http(s) URL");
        var options = new GrpcChannelOptions { MaxReceiveMessageSize = 64 << 20, MaxSendMessageSize = 256 << 20 };
        if (!string.IsNullOrEmpty(key))
        {
            var credentials = CallCredentials.FromInterceptor((_, metadata) =>
            {
                metadata.Add("authorization", "Bearer " + key);
                return Task.CompletedTask;
            });
            options.Credentials = ChannelCredentials.Create(uri.Scheme == "https" ? ChannelCredentials.SecureSsl : ChannelCredentials.Insecure, credentials);
            options.UnsafeUseInsecureChannelCallCredentials = uri.Scheme == "http";
        }
        return GrpcChannel.ForAddress(uri, options);
    }

    /// <summary>One line for a failed call, and the exit code that says why.</summary>
    public static int Report(RpcException e)
    {
        Console.Error.WriteLine($"error: {e.StatusCode}: {e.Status.Detail}");
        return e.StatusCode switch
        {
            StatusCode.InvalidArgument or StatusCode.NotFound or StatusCode.FailedPrecondition or StatusCode.OutOfRange => ExitCodes.Usage,
            StatusCode.Unauthenticated or StatusCode.PermissionDenied => ExitCodes.Unauthorized,
            StatusCode.Cancelled => ExitCodes.Cancelled,
            _ => ExitCodes.Unavailable,
        };
    }
}
