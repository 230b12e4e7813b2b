using System.Diagnostics.Metrics;
using LLark.Common;

namespace LLark.Encoder.Service;

/// <summary>
/// The "LLark.Encoder" meter: cache hits and misses by tier, corrupt entries found, bytes held in memory, encode
/// seconds per batch, clips and batches encoded, queue depth, the bytes of an upload held at once.
/// </summary>
public sealed class EncoderMetrics
{
    public const string MeterName = "LLark.Encoder";

    /// <summary>The encoder's spans (encode), under the meter's name; the hosts export it when tracing is configured.</summary>
    public static readonly System.Diagnostics.ActivitySource Traces = new(MeterName);

    private readonly Meter meter;
    private readonly Counter<long> hits;
    private readonly Counter<long> misses;
    private readonly Counter<long> corrupt;
    private readonly Counter<long> clips;
    private readonly Histogram<double> encodeSeconds;
    private readonly Histogram<int> batchSize;
    private readonly Histogram<long> uploadHeld;

    /// <param name="meters">The host's, which owns the meter, so that a listener can tell one host's numbers from another's in the same process.</param>
    public EncoderMetrics(IMeterFactory meters)
    {
        meter = meters.Create(MeterName);
        hits = meter.CreateCounter<long>("llark.encoder.cache.hits", "{lookup}", "Lookups answered by a cache tier, by tier");
        misses = meter.CreateCounter<long>("llark.encoder.cache.misses", "{lookup}", "Lookups a cache tier could not answer, by tier");
        corrupt = meter.CreateCounter<long>("llark.encoder.cache.corrupt", "{entry}", "Stored entries that failed their checks and were deleted, by tier");
        clips = meter.CreateCounter<long>("llark.encoder.clips_encoded", "{clip}", "Clips the model encoded");
        encodeSeconds = meter.CreateHistogram<double>("llark.encoder.encode.duration", "s", "Seconds of one forward pass (a batch of clips)",
            tags: null, advice: LatencyBuckets.Seconds);
        batchSize = meter.CreateHistogram<int>("llark.encoder.batch.size", "{clip}", "Clips per forward pass");
        uploadHeld = meter.CreateHistogram<long>("llark.encoder.upload.held_bytes", "By",
            "The most bytes of one EmbedStream upload the service held at once, by decoding (incremental: a WAV decoded as it arrived; whole: collected first)",
            tags: null, advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24, 1 << 26] });
        var memory = new KeyValuePair<string, object?>("tier", "memory");
        var disk = new KeyValuePair<string, object?>("tier", "disk");
        meter.CreateObservableGauge("llark.encoder.cache.bytes", () => new[] { new Measurement<long>(MemoryBytes(), memory), new Measurement<long>(DiskBytes(), disk) },
            "By", "Bytes held by a cache tier (memory: frames; disk: entry files)");
        meter.CreateObservableGauge("llark.encoder.cache.entries", () => new[] { new Measurement<int>(MemoryEntries(), memory), new Measurement<int>(DiskEntries(), disk) },
            "{entry}", "Entries held by a cache tier");
        meter.CreateObservableGauge("llark.encoder.queue.depth", () => QueueDepth(), "{clip}", "Clips waiting for the model");
    }

    /// <summary>Sources of the gauges, set by whoever owns the numbers once it exists.</summary>
    public Func<long> MemoryBytes { get; set; } = () => 0;

    public Func<int> MemoryEntries { get; set; } = () => 0;

    public Func<long> DiskBytes { get; set; } = () => 0;

    public Func<int> DiskEntries { get; set; } = () => 0;

    public Func<int> QueueDepth { get; set; } = () => 0;

    public void Hit(string tier) => hits.Add(1, new KeyValuePair<string, object?>("tier", tier));

    public void Miss(string tier) => misses.Add(1, new KeyValuePair<string, object?>("tier", tier));

    public void Corrupt(string tier) => corrupt.Add(1, new KeyValuePair<string, object?>("tier", tier));

    public void UploadHeld(long bytes, bool incremental) =>
        uploadHeld.Record(bytes, new KeyValuePair<string, object?>("decoding", incremental ? "incremental" : "whole"));

    public void Encoded(int count, TimeSpan elapsed)
    {
        clips.Add(count);
        encodeSeconds.Record(elapsed.TotalSeconds);
        batchSize.Record(count);
    }
}
