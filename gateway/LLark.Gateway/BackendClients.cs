using System.Net;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Grpc.Net.Client.Configuration;
using LLark.Encoder.V1;
using LLark.Language.V1;
using LLark.ServiceDefaults;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace LLark.Gateway;

/// <summary>
/// gRPC clients for the JSON front, sent over YARP's own clusters: the same pods (one destination each), the same
/// health state and the same HTTP/2 connections as proxied calls, so the front is configured once, in ReverseProxy.
/// </summary>
public sealed class BackendClients : IDisposable
{
    public const string LanguageCluster = "language";
    public const string EncoderCluster = "encoder";

    private readonly GrpcChannel language;
    private readonly GrpcChannel encoder;

    public BackendClients(IProxyStateLookup proxy, IOptions<GatewayOptions> options, IOptions<InternalTokenOptions> token, ILogger<BackendClients> logger)
    {
        RetryOptions retry = options.Value.Retry;
        int maxConcurrentPerPod = options.Value.Affinity.MaxConcurrentPerPod;
        language = Channel(new ClusterHandler(proxy, LanguageCluster, maxConcurrentPerPod, logger), retry);
        encoder = Channel(new ClusterHandler(proxy, EncoderCluster, maxConcurrentPerPod, logger), retry);
        string? internalToken = token.Value.Resolve();
        Language = new LanguageService.LanguageServiceClient(WithToken(language, internalToken));
        Encoder = new EncoderService.EncoderServiceClient(WithToken(encoder, internalToken));
    }

    /// <summary>Calls that carry the internal token the model services require, when one is configured.</summary>
    private static CallInvoker WithToken(GrpcChannel channel, string? token) =>
        token is null ? channel.CreateCallInvoker() : channel.Intercept(new InternalTokenSender(token));

    public LanguageService.LanguageServiceClient Language { get; }

    public EncoderService.EncoderServiceClient Encoder { get; }

    /// <summary>The idempotent methods retried on UNAVAILABLE by the client's own policy; Generate has none.</summary>
    private static GrpcChannel Channel(ClusterHandler handler, RetryOptions retry)
    {
        var config = new ServiceConfig();
        if (retry.MaxAttempts > 1 && retry.IdempotentMethods.Count > 0)
        {
            var method = new MethodConfig
            {
                RetryPolicy = new RetryPolicy
                {
                    MaxAttempts = retry.MaxAttempts,
                    InitialBackoff = retry.Backoff > TimeSpan.Zero ? retry.Backoff : TimeSpan.FromMilliseconds(1),
                    MaxBackoff = (retry.Backoff > TimeSpan.Zero ? retry.Backoff : TimeSpan.FromMilliseconds(1)) * retry.MaxAttempts,
                    BackoffMultiplier = 2,
                    RetryableStatusCodes = { Grpc.Core.StatusCode.Unavailable },
                },
            };
            foreach (string path in retry.IdempotentMethods)
            {
                string[] parts = path.Trim('/').Split('/');
                if (parts.Length == 2) method.Names.Add(new MethodName { Service = parts[0], Method = parts[1] });
            }
            config.MethodConfigs.Add(method);
        }
        return GrpcChannel.ForAddress("http://cluster", new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            ServiceConfig = config,
            MaxReceiveMessageSize = 64 << 20,
            MaxSendMessageSize = null,
            // A retried call keeps its request to send again: an Embed's clip can be 64 MiB.
            MaxRetryBufferPerCallSize = 96 << 20,
            MaxRetryBufferSize = 256 << 20,
        });
    }

    public void Dispose()
    {
        language.Dispose();
        encoder.Dispose();
    }

    /// <summary>
    /// Sends each request to an available destination of the cluster through the cluster's HTTP client, trying the next
    /// destination when no connection could be made (nothing was sent, so any method may go again). Picks as proxied
    /// calls are picked: by the call's clip (<see cref="ClipAffinity.Header"/>) where the cluster's policy is
    /// ClipAffinity, otherwise the less busy of two.
    /// </summary>
    private sealed class ClusterHandler(IProxyStateLookup proxy, string clusterId, int maxConcurrentPerPod, ILogger logger) : HttpMessageHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (!proxy.TryGetCluster(clusterId, out ClusterState? cluster))
                throw new HttpRequestException(HttpRequestError.ConnectionError, $"the gateway has no cluster '{clusterId}'");
            string? key = ClipAffinity.TakeKey(request);
            if (cluster.Model.Config.LoadBalancingPolicy != ClipAffinity.PolicyName) key = null;
            IReadOnlyList<DestinationState> available = cluster.DestinationsState.AvailableDestinations;
            string pathAndQuery = request.RequestUri!.PathAndQuery;
            var tried = new List<DestinationState>();
            while (true)
            {
                // Untried ones only: after a failed connection the clip's next pod in its ranking, as for a proxied call.
                DestinationState destination = ClipAffinity.Pick(key, [.. available.Where(d => !tried.Contains(d))], maxConcurrentPerPod)
                    ?? throw new HttpRequestException(HttpRequestError.ConnectionError, $"no {clusterId} backend is available");
                tried.Add(destination);
                request.RequestUri = new Uri(destination.Model.Config.Address.TrimEnd('/') + pathAndQuery);
                request.Headers.Host = destination.Model.Config.Host is { Length: > 0 } host ? host : null;
                request.Version = cluster.Model.Config.HttpRequest?.Version ?? HttpVersion.Version20;
                request.VersionPolicy = cluster.Model.Config.HttpRequest?.VersionPolicy ?? HttpVersionPolicy.RequestVersionExact;
                try
                {
                    return await cluster.Model.HttpClient.SendAsync(request, cancellationToken).ConfigureAwait(false);
                }
                catch (HttpRequestException e) when (e.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError
                    && tried.Count < available.Count)
                {
                    Log.JsonFrontRetrying(logger, clusterId, pathAndQuery, destination.DestinationId, e.Message);
                }
            }
        }
    }
}
