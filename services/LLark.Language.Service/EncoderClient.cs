using System.Diagnostics;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Language.Engine.Multimodal;

namespace LLark.Language.Service;

/// <summary>
/// Fetches audio embeddings from the encoder service for a Generate call, inside that call's deadline and
/// cancellation. Statuses are passed on with the encoder named: NOT_FOUND for an unknown id, INVALID_ARGUMENT for
/// audio it refused, UNAVAILABLE when it cannot be reached.
/// </summary>
public sealed class EncoderClient(EncoderService.EncoderServiceClient? client, ILogger<EncoderClient> logger)
{
    public async Task<(AudioFrames Frames, TimeSpan Elapsed)> FetchAsync(string embeddingId, ServerCallContext context)
    {
        EncoderService.EncoderServiceClient encoder = Require();
        var clock = Stopwatch.StartNew();
        try
        {
            using var call = encoder.GetEmbedding(new GetEmbeddingRequest { EmbeddingId = embeddingId, FrameDtype = FrameDType.Float32 },
                deadline: context.Deadline, cancellationToken: context.CancellationToken);
            float[]? values = null;
            EmbeddingFrames? first = null;
            await foreach (EmbeddingChunk chunk in call.ResponseStream.ReadAllAsync(context.CancellationToken).ConfigureAwait(false))
            {
                first ??= chunk.Frames;
                values ??= new float[checked((long)chunk.TotalFrames * chunk.Frames.Width)];
                float[] part = EmbeddingFramesCodec.Decode(chunk.Frames);
                part.CopyTo(values, (long)chunk.FirstFrame * chunk.Frames.Width);
            }
            if (first is null || values is null) throw new RpcException(new Status(StatusCode.Internal, $"the encoder returned no frames for embedding '{embeddingId}'"));
            return (new AudioFrames(values, values.Length / (int)first.Width, (int)first.Width, first.Fps, NullIfEmpty(first.EncoderModelId), embeddingId),
                clock.Elapsed);
        }
        catch (RpcException e)
        {
            throw Translate(e, "embedding_id");
        }
        catch (FormatException e)
        {
            throw new RpcException(new Status(StatusCode.Internal, $"the encoder sent malformed frames: {e.Message}"));
        }
    }

    public async Task<(AudioFrames Frames, TimeSpan Elapsed)> EmbedAsync(AudioBytes audio, ServerCallContext context)
    {
        EncoderService.EncoderServiceClient encoder = Require();
        var clock = Stopwatch.StartNew();
        try
        {
            EmbedResponse response = await encoder.EmbedAsync(new EmbedRequest { Audio = audio, ReturnFrames = true, FrameDtype = FrameDType.Float32 },
                deadline: context.Deadline, cancellationToken: context.CancellationToken).ConfigureAwait(false);
            EmbeddingFrames frames = response.Embedding ?? throw new RpcException(new Status(StatusCode.Internal, "the encoder returned no frames"));
            float[] values = EmbeddingFramesCodec.Decode(frames);
            return (new AudioFrames(values, (int)frames.Frames, (int)frames.Width, frames.Fps, NullIfEmpty(frames.EncoderModelId),
                NullIfEmpty(response.EmbeddingId)), clock.Elapsed);
        }
        catch (RpcException e)
        {
            throw Translate(e, "audio_bytes");
        }
        catch (FormatException e)
        {
            throw new RpcException(new Status(StatusCode.Internal, $"the encoder sent malformed frames: {e.Message}"));
        }
    }

    private EncoderService.EncoderServiceClient Require() => client ?? throw new RpcException(new Status(StatusCode.FailedPrecondition,
        "this language service has no encoder configured (LLark:Language:EncoderAddress): send the embedding frames inline"));

    private RpcException Translate(RpcException e, string field)
    {
        Log.EncoderFailed(logger, e.StatusCode, e.Status.Detail);
        return e.StatusCode switch
        {
            StatusCode.NotFound => new RpcException(new Status(StatusCode.NotFound, Naming(field, e.Status.Detail))),
            StatusCode.InvalidArgument => new RpcException(new Status(StatusCode.InvalidArgument, Naming(field, e.Status.Detail))),
            StatusCode.ResourceExhausted => new RpcException(new Status(StatusCode.ResourceExhausted, $"encoder: {e.Status.Detail}"), e.Trailers),
            StatusCode.Cancelled or StatusCode.DeadlineExceeded => e,
            _ => new RpcException(new Status(StatusCode.Unavailable, $"the encoder service is unavailable ({e.StatusCode}: {e.Status.Detail})")),
        };
    }

    /// <summary>The encoder's detail under this request's field; as it is when the encoder already named the same field.</summary>
    private static string Naming(string field, string detail) =>
        detail.StartsWith($"{field}: ", StringComparison.Ordinal) ? detail : $"{field}: {detail}";

    private static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;
}
