namespace LLark.Language.Service;

internal static partial class Log
{
    [LoggerMessage(EventId = 1000, Level = LogLevel.Information, Message = "Loading LLark checkpoint {Path} ({DType} on {Device})")]
    public static partial void ModelLoading(ILogger logger, string path, string dType, string device);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Model {ModelId} loaded in {Seconds:F1} s: {Parameters} parameters, context {Context}, batch {Batch}; serving")]
    public static partial void ModelLoaded(ILogger logger, string modelId, double seconds, long parameters, int context, int batch);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Critical, Message = "Could not load the model from {Path}; stopping")]
    public static partial void ModelLoadFailed(ILogger logger, Exception error, string path);

    [LoggerMessage(EventId = 1100, Level = LogLevel.Information, Message = "Generate finished: {FinishReason}, prompt {PromptTokens} ({CachedTokens} from the prefix cache, audio {AudioTokens}), generated {Generated}, queue {QueueMs:F1} ms, first token {TtftMs:F1} ms, decode {DecodeMs:F1} ms")]
    public static partial void GenerateFinished(ILogger logger, LLark.Language.Engine.Generation.FinishReason finishReason, int promptTokens, int cachedTokens, int audioTokens, int generated, double queueMs, double ttftMs, double decodeMs);

    [LoggerMessage(EventId = 1200, Level = LogLevel.Warning, Message = "Encoder call failed: {Status} {Detail}")]
    public static partial void EncoderFailed(ILogger logger, Grpc.Core.StatusCode status, string detail);
}
