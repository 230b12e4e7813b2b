using LLark.ServiceDefaults;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.ServiceDiscovery;
using Yarp.ReverseProxy.Transforms;

namespace LLark.Gateway;

/// <summary>The host's wiring, shared by <c>Program.cs</c> and the integration tests (which start it on loopback).</summary>
public static class GatewayHost
{
    public const string ReverseProxySection = "ReverseProxy";

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        WebApplicationBuilder builder = WebApplication.CreateBuilder(args);
        configure?.Invoke(builder);
        builder.AddLLarkServiceDefaults(GatewayMetrics.MeterName);
        builder.Services.AddOptions<InternalTokenOptions>().Bind(builder.Configuration.GetSection(InternalTokenOptions.Section))
            .ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<GatewayOptions>().Bind(builder.Configuration.GetSection(GatewayOptions.Section))
            .ValidateDataAnnotations().ValidateOnStart();
        // Also on its own: YARP resolves destinations while the app is built, before start-up validates the rest.
        builder.Services.AddOptions<DnsOptions>().Bind(builder.Configuration.GetSection(GatewayOptions.Section).GetSection(nameof(GatewayOptions.Dns)))
            .ValidateDataAnnotations();

        builder.Services.AddSingleton<GatewayMetrics>();
        builder.Services.AddSingleton<ApiKeyStore>();
        builder.Services.AddSingleton<KeyLimiters>();
        builder.Services.AddSingleton<ForwardingPolicy>();
        builder.Services.AddSingleton<BackendClients>();
        builder.Services.AddSingleton<ILoadBalancingPolicy, ClipAffinityPolicy>();
        builder.Services.AddRequestTimeouts();
        builder.Services.AddSingleton<AnonymousLimits>();
        string? internalToken = builder.Configuration.InternalToken();
        builder.Services.AddReverseProxy().LoadFromConfig(builder.Configuration.GetSection(ReverseProxySection))
            .AddTransforms(transforms =>
            {
                // The model services take calls only with this token; a caller's own copy of the header never passes.
                if (internalToken is not null) transforms.AddRequestHeader(InternalTokenOptions.Header, internalToken, append: false);
                else transforms.AddRequestHeaderRemove(InternalTokenOptions.Header);
            });
        builder.Services.TryAddSingleton<HostLookup>(PodDnsResolver.Dns);
        builder.Services.AddSingleton<IDestinationResolver, PodDnsResolver>();

        WebApplication app = builder.Build();
        ServingStatus serving = app.Services.GetRequiredService<ServingStatus>();
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            serving.Set(true);
            var proxy = app.Services.GetRequiredService<IProxyStateLookup>();
            int keys = app.Services.GetRequiredService<ApiKeyStore>().Keys.Count;
            string clusters = string.Join(", ", proxy.GetClusters().Select(c => $"{c.ClusterId} ({c.DestinationsState.AllDestinations.Count})"));
            ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(GatewayHost).FullName!);
            Log.Serving(logger, keys, clusters);
        });
        app.Lifetime.ApplicationStopping.Register(() => serving.Set(false));

        app.UseRouting();
        app.UseRequestTimeouts();
        app.UseMiddleware<AccessMiddleware>();
        app.MapReverseProxy(pipeline =>
        {
            // First, before anything reads a body.
            pipeline.Use(BodyLimit.InvokeAsync);
            // Outside the retries, so a body is read once; a Generate is tried again only when it never connected, body unsent.
            pipeline.Use(GenerateKeyReader.InvokeAsync);
            pipeline.Use((context, next) => context.RequestServices.GetRequiredService<ForwardingPolicy>().InvokeAsync(context, next));
            pipeline.UseSessionAffinity();
            pipeline.UseLoadBalancing();
            pipeline.UsePassiveHealthChecks();
        });
        app.MapJsonFront();
        app.MapOpenAiFront();
        app.MapTryPage();
        app.MapLLarkDefaults();
        return app;
    }
}
