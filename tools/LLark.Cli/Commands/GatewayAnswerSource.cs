using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using LLark.Common.V1;
using LLark.Encoder.Engine;
using LLark.Encoder.V1;
using LLark.Evaluation;
using LLark.Language.V1;

namespace LLark.Cli.Commands;

/// <summary>
/// The evaluation's answers through the gateway: each clip embedded once (Embed), then every question asked by its
/// embedding id (Generate), greedily, as <c>llark ask</c> does. A clip the encoder refuses (it cannot be decoded, or
/// is too short) is reported as unusable and skipped; any other failure stops the run (answers so far are kept).
/// </summary>
internal sealed class GatewayAnswerSource(GrpcChannel channel, string address, uint maxNewTokens) : IAnswerSource
{
    private readonly EncoderService.EncoderServiceClient encoder = new(channel);
    private readonly LanguageService.LanguageServiceClient language = new(channel);
    private readonly uint maxNewTokens = maxNewTokens;

    public string Name => $"gateway:{address}";

    public async Task<IEmbeddedClip> EmbedAsync(string audioPath, CancellationToken ct)
    {
        if (!File.Exists(audioPath)) throw new FileNotFoundException($"clip not found: {audioPath}", audioPath);
        try
        {
            EmbedResponse r = await encoder.EmbedAsync(new EmbedRequest
            {
                Audio = new AudioBytes { Data = ByteString.CopyFrom(await File.ReadAllBytesAsync(audioPath, ct)), Filename = Path.GetFileName(audioPath) },
            }, cancellationToken: ct);
            return new Clip(this, r.EmbeddingId, (int)r.Frames);
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.OutOfRange)
        {
            throw new UnusableClipException($"the encoder refused {audioPath}: {e.Status.Detail}");
        }
    }

    /// <summary>One Generate call by embedding id, the stream read to its final frame.</summary>
    internal static async Task<GenerateFinal> GenerateAsync(LanguageService.LanguageServiceClient language, GenerateRequest request,
        Action<string>? onDelta, CancellationToken ct)
    {
        using var call = language.Generate(request, cancellationToken: ct);
        GenerateFinal? final = null;
        await foreach (GenerateResponse response in call.ResponseStream.ReadAllAsync(ct))
        {
            if (response.FrameCase == GenerateResponse.FrameOneofCase.Final) final = response.Final;
            else onDelta?.Invoke(response.Delta.Text);
        }
        return final ?? throw new RpcException(new Status(StatusCode.Internal, "the stream ended without a final frame"));
    }

    internal static GenerateRequest Request(string embeddingId, string question, uint maxNewTokens)
    {
        var request = new GenerateRequest
        {
            EmbeddingId = embeddingId,
            Stopping = new StoppingParameters { MaxNewTokens = maxNewTokens },
            Sampling = new SamplingParameters { Temperature = 0 },
        };
        request.Turns.Add(new ChatTurn { Human = question });
        return request;
    }

    private sealed class Clip(GatewayAnswerSource owner, string id, int frames) : IEmbeddedClip
    {
        public int Frames => frames;

        public async Task<ModelAnswer> AskAsync(string question, CancellationToken ct)
        {
            var clock = Stopwatch.StartNew();
            GenerateFinal f = await GenerateAsync(owner.language, Request(id, question, owner.maxNewTokens), null, ct);
            return new ModelAnswer(f.Text, f.FinishReason.ToString().ToLowerInvariant(), (int)(f.Usage?.PromptTokens ?? 0),
                (int)(f.Usage?.GeneratedTokens ?? 0), clock.Elapsed.TotalMilliseconds);
        }
    }
}
