using System.Globalization;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Service.Caching;
using LLark.Encoder.Service.Serving;
using LLark.Encoder.V1;
using Microsoft.Extensions.Options;

namespace LLark.Encoder.Service;

/// <summary>Validates, maps the request to <see cref="EmbeddingService"/>, maps the answer back, and errors to real statuses.</summary>
public sealed class EncoderGrpcService(EmbeddingService embeddings, IOptions<EncoderServiceOptions> options, ILogger<EncoderGrpcService> logger)
    : EncoderService.EncoderServiceBase
{
    /// <summary>GetEmbedding's chunk size when the request leaves frames_per_chunk at 0.</summary>
    internal const int DefaultChunkBytes = 1 << 20;

    public override Task<EmbedResponse> Embed(EmbedRequest request, ServerCallContext context) => Guard(nameof(Embed), context, async () =>
    {
        if (request.Audio is null) throw new InvalidEmbedRequestException("audio", "the clip is required");
        ValueSize(request.FrameDtype, "frame_dtype");
        CheckSize(request.Audio.Data.Length, "audio.data");
        EmbedResult result = await embeddings.EmbedAsync(request.Audio.Data.ToByteArray(), request.Audio.Filename, context.CancellationToken).ConfigureAwait(false);
        return Response(result, request.ReturnFrames, request.FrameDtype);
    });

    public override Task<EmbedResponse> EmbedStream(IAsyncStreamReader<EmbedStreamRequest> requestStream, ServerCallContext context) =>
        Guard(nameof(EmbedStream), context, async () =>
        {
            CancellationToken ct = context.CancellationToken;
            if (!await requestStream.MoveNext(ct).ConfigureAwait(false) || requestStream.Current.PartCase != EmbedStreamRequest.PartOneofCase.Header)
                throw new InvalidEmbedRequestException("header", "the first message of the upload must be its header");
            EmbedStreamHeader header = requestStream.Current.Header;
            ValueSize(header.FrameDtype, "header.frame_dtype");
            if (header.TotalBytes > (ulong)options.Value.MaxAudioBytes) CheckSize((long)Math.Min(header.TotalBytes, long.MaxValue), "header.total_bytes");
            // The announced size is a hint, not a promise: allocate at most 8 MiB up front.
            using var buffer = new MemoryStream((int)Math.Clamp(header.TotalBytes, 1UL << 16, 8UL << 20));
            while (await requestStream.MoveNext(ct).ConfigureAwait(false))
            {
                if (requestStream.Current.PartCase != EmbedStreamRequest.PartOneofCase.Chunk)
                    throw new InvalidEmbedRequestException("header", "only the first message may be a header");
                CheckSize(buffer.Length + requestStream.Current.Chunk.Length, "chunk");
                requestStream.Current.Chunk.WriteTo(buffer);
            }
            if (header.TotalBytes > 0 && (ulong)buffer.Length != header.TotalBytes)
                throw new InvalidEmbedRequestException("chunk", $"the upload ended after {buffer.Length} of the {header.TotalBytes} bytes its header announced");
            byte[] audio = buffer.Length == buffer.Capacity ? buffer.GetBuffer() : buffer.ToArray();
            EmbedResult result = await embeddings.EmbedAsync(audio, header.Filename, ct).ConfigureAwait(false);
            return Response(result, header.ReturnFrames, header.FrameDtype);
        });

    public override Task GetEmbedding(GetEmbeddingRequest request, IServerStreamWriter<EmbeddingChunk> responseStream, ServerCallContext context) =>
        Guard(nameof(GetEmbedding), context, async () =>
        {
            int size = ValueSize(request.FrameDtype, "frame_dtype");
            StoredEmbedding entry = await embeddings.GetAsync(request.EmbeddingId, context.CancellationToken).ConfigureAwait(false);
            int perChunk = request.FramesPerChunk > 0
                ? (int)Math.Min(request.FramesPerChunk, (uint)entry.Frames)
                : Math.Clamp(DefaultChunkBytes / (entry.Width * size), 1, entry.Frames);
            for (int first = 0; first < entry.Frames; first += perChunk)
            {
                int count = Math.Min(perChunk, entry.Frames - first);
                await responseStream.WriteAsync(new EmbeddingChunk
                {
                    Frames = EmbeddingFramesCodec.Encode(entry.Rows(first, count), entry.Width, entry.Fps, request.FrameDtype, entry.ModelId),
                    FirstFrame = (uint)first,
                    TotalFrames = (uint)entry.Frames,
                }, context.CancellationToken).ConfigureAwait(false);
            }
        });

    public override Task<DeleteEmbeddingResponse> DeleteEmbedding(DeleteEmbeddingRequest request, ServerCallContext context) =>
        Guard(nameof(DeleteEmbedding), context, async () =>
            new DeleteEmbeddingResponse { Deleted = await embeddings.DeleteAsync(request.EmbeddingId).ConfigureAwait(false) });

    private void CheckSize(long bytes, string field)
    {
        int limit = options.Value.MaxAudioBytes;
        if (bytes > limit) throw new InvalidEmbedRequestException(field, $"the clip has {(field == "chunk" ? "more than " : "")}{bytes} bytes, more than this server's limit of {limit}");
    }

    private static int ValueSize(FrameDType dtype, string field) => dtype is FrameDType.Unspecified or FrameDType.Float32 or FrameDType.Bfloat16
        ? EmbeddingFramesCodec.ValueSize(dtype)
        : throw new InvalidEmbedRequestException(field, $"unknown frame dtype {(int)dtype}");

    private static EmbedResponse Response(EmbedResult result, bool returnFrames, FrameDType dtype)
    {
        StoredEmbedding e = result.Embedding;
        return new EmbedResponse
        {
            EmbeddingId = e.Id,
            Frames = (uint)e.Frames,
            Width = (uint)e.Width,
            Fps = e.Fps,
            EffectiveFps = e.EffectiveFps,
            EncoderModelId = e.ModelId,
            Cached = result.Cached,
            AudioSeconds = e.AudioSeconds,
            Embedding = returnFrames ? EmbeddingFramesCodec.Encode(e.Values, e.Width, e.Fps, dtype, e.ModelId) : null,
        };
    }

    private async Task Guard(string method, ServerCallContext context, Func<Task> call)
    {
        try
        {
            await call().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw Failure(method, context, e);
        }
    }

    private async Task<T> Guard<T>(string method, ServerCallContext context, Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw Failure(method, context, e);
        }
    }

    private RpcException Failure(string method, ServerCallContext context, Exception e)
    {
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
    private static RpcException? ToStatus(Exception e) => e switch
    {
        RpcException rpc => rpc,
        AudioDecodeException audio => new RpcException(new Status(StatusCode.InvalidArgument, $"audio: {Reason(audio.Reason)}: {audio.Message}"),
            new Metadata { { "llark-audio-error", Reason(audio.Reason) } }),
        InvalidEmbedRequestException invalid => new RpcException(new Status(StatusCode.InvalidArgument, $"{invalid.Field}: {invalid.Message}")),
        EmbeddingNotFoundException missing => new RpcException(new Status(StatusCode.NotFound, $"embedding_id: {missing.Message}")),
        QueueFullException full => new RpcException(new Status(StatusCode.ResourceExhausted, full.Message),
            new Metadata { { "grpc-retry-pushback-ms", ((long)full.RetryAfter.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) } }),
        ObjectDisposedException => new RpcException(new Status(StatusCode.Unavailable, "the encoder is shutting down; retry on another replica")),
        _ => null,
    };

    /// <summary>empty, truncated, corrupt, unsupported, too-large, too-long.</summary>
    private static string Reason(AudioDecodeError reason) => reason switch
    {
        AudioDecodeError.TooLarge => "too-large",
        AudioDecodeError.TooLong => "too-long",
        _ => reason.ToString().ToLowerInvariant(),
    };
}
