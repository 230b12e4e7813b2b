using LLark.Encoder.Engine.Serving;

namespace LLark.Encoder.Service.Serving;

/// <summary>The worker's reports as the service's metrics and log events.</summary>
internal sealed class EncodeReporter(EncoderMetrics metrics, ILogger logger) : IEncodeObserver
{
    public void Encoded(int clips, TimeSpan elapsed)
    {
        metrics.Encoded(clips, elapsed);
        Log.BatchEncoded(logger, clips, elapsed.TotalMilliseconds);
    }

    public void Failed(Exception exception, int clips) => Log.BatchFailed(logger, exception, clips);
}
