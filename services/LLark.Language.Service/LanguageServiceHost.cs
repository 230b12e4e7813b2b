using Grpc.Core;
using LLark.Encoder.V1;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Serving;
using LLark.ServiceDefaults;

namespace LLark.Language.Service;

/// <summary>The host's wiring, shared by <c>Program.cs</c> and the integration tests (which start it on loopback).</summary>
public static class LanguageServiceHost
{
    public const string GrpcServiceName = "llark.language.v1.LanguageService";

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        WebApplicationBuilder builder = WebApplication.CreateBuilder(args);
        configure?.Invoke(builder);
        builder.AddLLarkServiceDefaults(BatchScheduler.MeterName).RequireInternalToken();
        builder.Services.AddOptions<LanguageServiceOptions>().Bind(builder.Configuration.GetSection(LanguageServiceOptions.Section))
            .ValidateDataAnnotations().ValidateOnStart();
        var options = builder.Configuration.GetSection(LanguageServiceOptions.Section).Get<LanguageServiceOptions>() ?? new LanguageServiceOptions();
        builder.Services.Configure<Grpc.AspNetCore.Server.GrpcServiceOptions>(o => o.MaxReceiveMessageSize = options.MaxRequestBytes);

        if (!string.IsNullOrEmpty(options.EncoderAddress))
        {
            IHttpClientBuilder encoder = builder.Services.AddGrpcClient<EncoderService.EncoderServiceClient>(o => o.Address = new Uri(options.EncoderAddress));
            // The encoder requires the token the gateway sends; this service shares it.
            if (builder.Configuration.InternalToken() is { } token) encoder.AddInterceptor(() => new InternalTokenSender(token));
            encoder.ConfigureChannel(c =>
            {
                c.MaxReceiveMessageSize = 64 << 20;
                // The default back-off grows to two minutes while calls keep failing, so an encoder back after a
                // long outage stayed unreachable for tens of seconds; a one-second ceiling heals within about that,
                // as the gateway (which connects per call) does. Retrying a dead address once a second costs nothing.
                c.InitialReconnectBackoff = TimeSpan.FromMilliseconds(100);
                c.MaxReconnectBackoff = TimeSpan.FromSeconds(1);
            });
        }
        builder.Services.AddSingleton(sp => new EncoderClient(sp.GetService<EncoderService.EncoderServiceClient>(), sp.GetRequiredService<ILogger<EncoderClient>>()));
        builder.Services.AddGrpcErrorMapping<ContextLengthException>(e =>
            new RpcException(new Status(StatusCode.InvalidArgument, $"turns: the prompt is too long: {e.Message}")));
        builder.Services.AddSingleton<ModelHost>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ModelHost>());

        WebApplication app = builder.Build();
        app.Services.GetRequiredService<ServingStatus>().Add(GrpcServiceName);
        app.MapGrpcService<LanguageGrpcService>();
        app.MapLLarkDefaults();
        return app;
    }
}
