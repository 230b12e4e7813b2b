using Grpc.Core;
using LLark.Encoder.Engine;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Service.Caching;
using LLark.ServiceDefaults;

namespace LLark.Encoder.Service;

/// <summary>The host's wiring, shared by <c>Program.cs</c> and the integration tests (which start it on loopback).</summary>
public static class EncoderServiceHost
{
    public const string GrpcServiceName = "llark.encoder.v1.EncoderService";

    /// <summary>Room beside the audio for the rest of a message (file name, flags, framing).</summary>
    private const int MessageOverheadBytes = 1 << 20;

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        WebApplicationBuilder builder = WebApplication.CreateBuilder(args);
        configure?.Invoke(builder);
        builder.AddLLarkServiceDefaults(EncoderMetrics.MeterName).RequireInternalToken();
        builder.Services.AddOptions<EncoderServiceOptions>().Bind(builder.Configuration.GetSection(EncoderServiceOptions.Section))
            .ValidateDataAnnotations().ValidateOnStart();
        var options = builder.Configuration.GetSection(EncoderServiceOptions.Section).Get<EncoderServiceOptions>() ?? new EncoderServiceOptions();
        // A unary clip travels in one message; past this gRPC itself refuses it (RESOURCE_EXHAUSTED) before it is read.
        builder.Services.Configure<Grpc.AspNetCore.Server.GrpcServiceOptions>(o =>
        {
            o.MaxReceiveMessageSize = options.MaxAudioBytes + MessageOverheadBytes;
            o.MaxSendMessageSize = null;
        });

        builder.Services.AddGrpcErrorMapping<AudioDecodeException>(e =>
            new RpcException(new Status(StatusCode.InvalidArgument, $"audio: {Reason(e.Reason)}: {e.Message}"), new Metadata { { "llark-audio-error", Reason(e.Reason) } }));
        builder.Services.AddGrpcErrorMapping<UnusableClipException>(e => new RpcException(new Status(StatusCode.InvalidArgument, $"audio: {e.Message}")));
        builder.Services.AddGrpcErrorMapping<EmbeddingNotFoundException>(e => new RpcException(new Status(StatusCode.NotFound, $"embedding_id: {e.Message}")));
        // The worker refuses clips once the host is stopping.
        builder.Services.AddGrpcErrorMapping<ObjectDisposedException>(_ =>
            new RpcException(new Status(StatusCode.Unavailable, "the encoder is shutting down; retry on another replica")));
        builder.Services.AddSingleton<EncoderMetrics>();
        builder.Services.AddSingleton<EmbeddingCache>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<EmbeddingCache>());
        builder.Services.AddSingleton<ModelHost>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ModelHost>());
        builder.Services.AddSingleton<EmbeddingService>();
        builder.Services.AddSingleton<IdleMemoryTrim>();

        WebApplication app = builder.Build();
        app.Services.GetRequiredService<ServingStatus>().Add(GrpcServiceName);
        app.MapGrpcService<EncoderGrpcService>();
        app.MapLLarkDefaults();
        return app;
    }

    /// <summary>empty, truncated, corrupt, unsupported, too-large, too-long.</summary>
    private static string Reason(AudioDecodeError reason) => reason switch
    {
        AudioDecodeError.TooLarge => "too-large",
        AudioDecodeError.TooLong => "too-long",
        _ => reason.ToString().ToLowerInvariant(),
    };
}
