using System.Runtime.InteropServices;
using Grpc.Core;
using LLark.Common;
using LLark.Common.V1;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Service.Caching;
using LLark.Encoder.V1;
using LLark.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace LLark.Encoder.Service;

/// <summary>Validates, maps the request to <see cref="EmbeddingService"/>, and maps the answer back.</summary>
public sealed class EncoderGrpcService(EmbeddingService embeddings, IOptions<EncoderServiceOptions> options, IdleMemoryTrim trim)
    : EncoderService.EncoderServiceBase
{
    /// <summary>GetEmbedding's chunk size when the request leaves frames_per_chunk at 0.</summary>
    internal const int DefaultChunkBytes = 1 << 20;

    public override async Task<EmbedResponse> Embed(EmbedRequest request, ServerCallContext context)
    {
        if (request.Audio is null) throw new InvalidRequestException("audio", "the clip is required");
        ValueSize(request.FrameDtype, "frame_dtype");
        CheckSize(request.Audio.Data.Length, "audio.data");
        using IDisposable large = trim.Track(request.Audio.Data.Length);
        // The parsed message owns its bytes: they are read in place, not copied (a clip is up to 64 MiB).
        byte[] audio = MemoryMarshal.TryGetArray(request.Audio.Data.Memory, out ArraySegment<byte> whole) && whole.Offset == 0
            && whole.Count == whole.Array!.Length
            ? whole.Array
            : request.Audio.Data.ToByteArray();
        EmbedResult result = await embeddings.EmbedAsync(audio, request.Audio.Filename, context.CancellationToken).ConfigureAwait(false);
        return Response(result, request.ReturnFrames, request.FrameDtype);
    }

    public override async Task<EmbedResponse> EmbedStream(IAsyncStreamReader<EmbedStreamRequest> requestStream, ServerCallContext context)
    {
        CancellationToken ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct).ConfigureAwait(false) || requestStream.Current.PartCase != EmbedStreamRequest.PartOneofCase.Header)
            throw new InvalidRequestException("header", "the first message of the upload must be its header");
        EmbedStreamHeader header = requestStream.Current.Header;
        ValueSize(header.FrameDtype, "header.frame_dtype");
        if (header.TotalBytes > (ulong)options.Value.MaxAudioBytes) CheckSize((long)Math.Min(header.TotalBytes, long.MaxValue), "header.total_bytes");
        using IDisposable large = trim.Track((long)Math.Min(header.TotalBytes, long.MaxValue));
        // Each chunk is decoded as it arrives (a WAV; other formats are collected and decoded at the end), so a large
        // upload is never held whole. A refusal ends the call at once, with the rest of the upload unread: the clip is
        // wrong whatever follows, and the sender is spared sending it.
        AudioUpload upload = embeddings.StartUpload((long)Math.Min(header.TotalBytes, long.MaxValue));
        while (await requestStream.MoveNext(ct).ConfigureAwait(false))
        {
            if (requestStream.Current.PartCase != EmbedStreamRequest.PartOneofCase.Chunk)
                throw new InvalidRequestException("header", "only the first message may be a header");
            CheckSize(upload.BytesReceived + requestStream.Current.Chunk.Length, "chunk");
            await embeddings.AppendAsync(upload, requestStream.Current.Chunk.Memory, ct).ConfigureAwait(false);
        }
        if (header.TotalBytes > 0 && (ulong)upload.BytesReceived != header.TotalBytes)
            throw new InvalidRequestException("chunk", $"the upload ended after {upload.BytesReceived} of the {header.TotalBytes} bytes its header announced");
        EmbedResult result = await embeddings.EmbedAsync(upload, header.Filename, ct).ConfigureAwait(false);
        return Response(result, header.ReturnFrames, header.FrameDtype);
    }

    public override async Task GetEmbedding(GetEmbeddingRequest request, IServerStreamWriter<EmbeddingChunk> responseStream, ServerCallContext context)
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
    }

    public override async Task<DeleteEmbeddingResponse> DeleteEmbedding(DeleteEmbeddingRequest request, ServerCallContext context) =>
        new() { Deleted = await embeddings.DeleteAsync(request.EmbeddingId).ConfigureAwait(false) };

    private void CheckSize(long bytes, string field)
    {
        int limit = options.Value.MaxAudioBytes;
        if (bytes > limit) throw new InvalidRequestException(field, $"the clip has {(field == "chunk" ? "more than " : "")}{bytes} bytes, more than this server's limit of {limit}");
    }

    private static int ValueSize(FrameDType dtype, string field) => dtype is FrameDType.Unspecified or FrameDType.Float32 or FrameDType.Bfloat16
        ? EmbeddingFramesCodec.ValueSize(dtype)
        : throw new InvalidRequestException(field, $"unknown frame dtype {(int)dtype}");

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
}
