namespace LLark.Encoder.Service;

internal static partial class Log
{
    [LoggerMessage(EventId = 2000, Level = LogLevel.Information, Message = "Loading Jukebox encoder {Path} ({DType} on {Device})")]
    public static partial void ModelLoading(ILogger logger, string path, string dType, string device);

    [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "Encoder {ModelId} loaded in {Seconds:F1} s: width {Width}, context {ContextSeconds:F2} s, batches of up to {MaxBatch}; serving")]
    public static partial void ModelLoaded(ILogger logger, string modelId, double seconds, int width, double contextSeconds, int maxBatch);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Critical, Message = "Could not load the encoder from {Path}; stopping")]
    public static partial void ModelLoadFailed(ILogger logger, Exception error, string path);

    [LoggerMessage(EventId = 2100, Level = LogLevel.Information, Message = "Embedded {EmbeddingId} ({File}): {Frames} frames, {AudioSeconds:F2} s of audio, {Source}, {Milliseconds:F1} ms")]
    public static partial void Embedded(ILogger logger, string embeddingId, string file, int frames, double audioSeconds, string source, double milliseconds);

    [LoggerMessage(EventId = 2200, Level = LogLevel.Debug, Message = "Encoded a batch of {Clips} clips in {Milliseconds:F1} ms")]
    public static partial void BatchEncoded(ILogger logger, int clips, double milliseconds);

    [LoggerMessage(EventId = 2201, Level = LogLevel.Error, Message = "A batch of {Clips} clips failed to encode")]
    public static partial void BatchFailed(ILogger logger, Exception error, int clips);

    [LoggerMessage(EventId = 2300, Level = LogLevel.Information, Message = "Cache tiers: memory {MemoryBytes} bytes, disk {Directory}, redis {Redis}")]
    public static partial void CacheTiers(ILogger logger, long memoryBytes, string directory, string redis);

    [LoggerMessage(EventId = 2301, Level = LogLevel.Warning, Message = "Corrupt {Tier} cache entry deleted, will be recomputed: {Problem}")]
    public static partial void CorruptEntry(ILogger logger, string tier, string problem);

    [LoggerMessage(EventId = 2302, Level = LogLevel.Warning, Message = "The {Tier} cache tier failed to {Operation} ({Problem}); carrying on without it for this request")]
    public static partial void TierFailed(ILogger logger, string tier, string operation, string problem);

    [LoggerMessage(EventId = 2303, Level = LogLevel.Warning, Message = "Redis is not reachable yet; its tier answers misses until it is")]
    public static partial void RedisNotConnected(ILogger logger);

    [LoggerMessage(EventId = 2304, Level = LogLevel.Information, Message = "Removed {Count} temporary files left by interrupted writes under {Directory}")]
    public static partial void TemporaryFilesSwept(ILogger logger, int count, string directory);

    [LoggerMessage(EventId = 2305, Level = LogLevel.Information, Message = "Disk cache under {Directory}: {Count} entries, {Bytes} bytes ({Evicted} least recently used deleted to fit the bound)")]
    public static partial void DiskIndexed(ILogger logger, int count, long bytes, string directory, int evicted);
}
