using System.Diagnostics.Metrics;
using LLark.Encoder.Service;

namespace LLark.Tests.Encoder.Service;

/// <summary>
/// Clips and forward passes one encoder host reported through its own meter (llark.encoder.clips_encoded and
/// llark.encoder.batch.size) since this was made; other hosts in the test process are not counted.
/// </summary>
internal sealed class EncodeCounts : IDisposable
{
    private readonly MeterListener listener = new();
    private long clips;
    private long batches;

    public EncodeCounts(IMeterFactory hostMeters)
    {
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, hostMeters) && instrument.Meter.Name == EncoderMetrics.MeterName
                && instrument.Name is "llark.encoder.clips_encoded" or "llark.encoder.batch.size")
                l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((_, count, _, _) => Interlocked.Add(ref clips, count));
        listener.SetMeasurementEventCallback<int>((_, _, _, _) => Interlocked.Increment(ref batches));
        listener.Start();
    }

    public long ClipsEncoded => Interlocked.Read(ref clips);

    public long Batches => Interlocked.Read(ref batches);

    public void Dispose() => listener.Dispose();
}
