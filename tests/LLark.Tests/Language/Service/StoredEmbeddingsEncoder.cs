using System.Collections.Concurrent;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Tests.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace LLark.Tests.Language.Service;

/// <summary>
/// A stand-in encoder service for the language service's own tests: it serves embeddings the test stored, keyed by
/// id and by audio bytes, over the real encoder contract. The real encoder service has its own tests; this one only
/// lets the language service's client side (ids, raw audio, NOT_FOUND, deadlines), and the gateway in front of it, be
/// exercised over real gRPC. It reports SERVING (gRPC health and /healthz) as soon as it is up.
/// </summary>
internal sealed class StoredEmbeddingsEncoder : EncoderService.EncoderServiceBase
{
    public ConcurrentDictionary<string, (float[] Values, int Width, double Fps)> Embeddings { get; } = new();

    public int Calls;

    public static async Task<(LoopbackHost Host, StoredEmbeddingsEncoder Encoder)> StartAsync(int port = 0, string address = "127.0.0.1",
        StoredEmbeddingsEncoder? encoder = null)
    {
        encoder ??= new StoredEmbeddingsEncoder();
        WebApplicationBuilder builder = WebApplication.CreateBuilder();
        LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Listen:Address"] = address,
            ["LLark:Listen:HttpPort"] = "-1",
            ["LLark:Listen:GrpcPort"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        })(builder);
        global::LLark.ServiceDefaults.ServiceDefaultsExtensions.AddLLarkServiceDefaults(builder);
        builder.Services.AddSingleton(encoder);
        WebApplication app = builder.Build();
        app.MapGrpcService<StoredEmbeddingsEncoder>();
        global::LLark.ServiceDefaults.ServiceDefaultsExtensions.MapLLarkDefaults(app);
        app.Services.GetRequiredService<global::LLark.ServiceDefaults.ServingStatus>().Set(true);
        return (await LoopbackHost.StartAsync(app), encoder);
    }

    public override async Task GetEmbedding(GetEmbeddingRequest request, IServerStreamWriter<EmbeddingChunk> responseStream, ServerCallContext context)
    {
        Interlocked.Increment(ref Calls);
        if (!Embeddings.TryGetValue(request.EmbeddingId, out var e))
            // Field first, as the real encoder answers.
            throw new RpcException(new Status(StatusCode.NotFound, $"embedding_id: no embedding with id '{request.EmbeddingId}'"));
        int frames = e.Values.Length / e.Width, perChunk = 3;
        for (int first = 0; first < frames; first += perChunk)
        {
            int n = Math.Min(perChunk, frames - first);
            await responseStream.WriteAsync(new EmbeddingChunk
            {
                Frames = EmbeddingFramesCodec.Encode(e.Values.AsSpan(first * e.Width, n * e.Width), e.Width, e.Fps, FrameDType.Float32),
                FirstFrame = (uint)first,
                TotalFrames = (uint)frames,
            });
        }
    }

    public override Task<DeleteEmbeddingResponse> DeleteEmbedding(DeleteEmbeddingRequest request, ServerCallContext context)
    {
        Interlocked.Increment(ref Calls);
        return Task.FromResult(new DeleteEmbeddingResponse { Deleted = Embeddings.TryRemove(request.EmbeddingId, out _) });
    }

    public override Task<EmbedResponse> Embed(EmbedRequest request, ServerCallContext context)
    {
        Interlocked.Increment(ref Calls);
        string key = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(request.Audio.Data.Span));
        if (!Embeddings.TryGetValue(key, out var e))
            throw new RpcException(new Status(StatusCode.InvalidArgument, "audio: not a WAV, MP3 or Ogg Vorbis file"));
        return Task.FromResult(new EmbedResponse
        {
            EmbeddingId = key,
            Frames = (uint)(e.Values.Length / e.Width),
            Width = (uint)e.Width,
            Fps = e.Fps,
            Embedding = EmbeddingFramesCodec.Encode(e.Values, e.Width, e.Fps, FrameDType.Float32),
        });
    }
}
