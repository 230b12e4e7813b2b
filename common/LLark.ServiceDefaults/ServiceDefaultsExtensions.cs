using System.Net;
using System.Security.Cryptography.X509Certificates;
using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace LLark.ServiceDefaults;

/// <summary>The wiring every LLark host shares, so each <c>Program.cs</c> stays a few lines.</summary>
public static class ServiceDefaultsExtensions
{
    /// <summary>
    /// Listeners (gRPC on HTTP/2, metrics on HTTP/1.1, both over TLS when a certificate is configured), gRPC (with
    /// reflection when <see cref="ListenOptions.Reflection"/> is on), the standard health service and errors mapped to statuses (<see cref="GrpcErrorInterceptor"/>),
    /// OpenTelemetry metrics for the given meters, JSON console logs, and
    /// options validated at start.
    /// </summary>
    public static WebApplicationBuilder AddLLarkServiceDefaults(this WebApplicationBuilder builder, params string[] meters)
    {
        builder.Services.AddOptions<ListenOptions>().Bind(builder.Configuration.GetSection(ListenOptions.Section))
            .ValidateDataAnnotations().ValidateOnStart();
        var listen = builder.Configuration.GetSection(ListenOptions.Section).Get<ListenOptions>() ?? new ListenOptions();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            IPAddress address = IPAddress.Parse(listen.Address);
            // Loaded here, at server start, after validation has named a missing file.
            X509Certificate2? certificate = listen.Certificate is { Path.Length: > 0 } c ? c.Load() : null;
            kestrel.Listen(address, listen.GrpcPort, o =>
            {
                o.Protocols = HttpProtocols.Http2;
                if (certificate is not null) o.UseHttps(certificate);
            });
            if (listen.HttpPort >= 0)
            {
                kestrel.Listen(address, listen.HttpPort, o =>
                {
                    o.Protocols = HttpProtocols.Http1;
                    if (certificate is not null) o.UseHttps(certificate);
                });
            }
        });

        builder.Logging.ClearProviders();
        builder.Logging.AddJsonConsole(o =>
        {
            o.IncludeScopes = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });

        builder.Services.AddGrpc(o =>
        {
            o.EnableDetailedErrors = false;
            o.Interceptors.Add<GrpcErrorInterceptor>();
        });
        // Kestrel's own body limit (30,000,000 bytes by default) would refuse a unary message that gRPC's limit allows,
        // and grpc-dotnet answers that UNKNOWN. The host's gRPC message limit, plus the 5-byte message header, is the
        // one limit; grpc-dotnet lifts Kestrel's for streaming calls itself.
        builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<GrpcServiceOptions>>((kestrel, grpc) =>
            kestrel.Limits.MaxRequestBodySize = grpc.Value.MaxReceiveMessageSize + 5L);
        if (listen.Reflection) builder.Services.AddGrpcReflection();
        // Kestrel's own pool keeps every 4 KiB block it ever held and lets idle ones go at 5 % per 10 s: the blocks that
        // buffered a burst of 64 MiB messages would stay resident for many minutes after it.
        builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>>(
            new BoundedBlockMemoryPoolFactory(BoundedBlockMemoryPool.DefaultRetainedBytes));
        builder.Services.AddSingleton<ServingStatus>();
        builder.Services.AddSingleton(sp => sp.GetRequiredService<ServingStatus>().Service);
        builder.Services.AddOpenTelemetry().WithMetrics(metrics =>
        {
            metrics.AddMeter(meters).AddAspNetCoreInstrumentation().AddRuntimeInstrumentation().AddPrometheusExporter();
            if (!string.IsNullOrEmpty(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"])) metrics.AddOtlpExporter();
        });
        // Traces are off unless an OTLP endpoint is configured (the standard OTEL_* variables): then each call's span,
        // its outgoing gRPC calls (W3C traceparent, which .NET's HTTP client sends whenever a span is current) and the
        // services' own spans (LLark.*: queue wait, prefill, decode, encode) go to the collector.
        if (!string.IsNullOrEmpty(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            builder.Services.AddOpenTelemetry().WithTracing(tracing => tracing
                .AddSource("Microsoft.AspNetCore", "System.Net.Http", "Yarp.ReverseProxy", "LLark.*")
                .AddOtlpExporter());
        }
        return builder;
    }

    /// <summary>
    /// Maps health, reflection (when on) and metrics (the gRPC port serves gRPC only, the HTTP port the rest), and gives
    /// request messages that fail before their handler a real status (<see cref="RequestMessageFailures"/>).
    /// </summary>
    public static WebApplication MapLLarkDefaults(this WebApplication app)
    {
        app.UseMiddleware<RequestMessageFailures>();
        app.MapGrpcService<Grpc.HealthCheck.HealthServiceImpl>();
        if (app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ListenOptions>>().Value.Reflection) app.MapGrpcReflectionService();
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapGet("/healthz", (ServingStatus status) =>
            status.IsServing ? Results.Text("SERVING") : Results.Text("NOT_SERVING", statusCode: 503));
        return app;
    }

    /// <summary>The URLs Kestrel bound, gRPC first (after start; resolves port 0).</summary>
    public static IReadOnlyList<Uri> BoundAddresses(this WebApplication app) =>
        [.. app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => new Uri(a))];
}
