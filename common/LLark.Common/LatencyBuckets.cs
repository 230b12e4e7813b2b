using System.Diagnostics.Metrics;

namespace LLark.Common;

/// <summary>
/// Histogram bucket edges for durations recorded in seconds. Without advice the exporters use OpenTelemetry's default
/// edges, which are meant for milliseconds (0, 5, 10, 25, ... 10000), so every value of a seconds histogram falls in
/// the first one or two buckets.
/// </summary>
public static class LatencyBuckets
{
    /// <summary>5 ms to 5 min: OpenTelemetry's edges for HTTP durations, extended to the minutes a CPU prefill or encode can take.</summary>
    public static InstrumentAdvice<double> Seconds { get; } = new()
    {
        HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120, 300],
    };
}
