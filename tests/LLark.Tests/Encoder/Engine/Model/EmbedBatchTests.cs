using LLark.Encoder.Engine.Model;
using Xunit.Abstractions;

namespace LLark.Tests.Encoder.Engine.Model;

/// <summary><see cref="JukeboxEncoder.EmbedBatch"/>: one padded forward pass for several clips gives each clip's own embedding.</summary>
public sealed class EmbedBatchTests(ITestOutputHelper output)
{
    [Fact]
    public void ABatchOnThePaddedPathMatchesEachClipEmbeddedAlone()
    {
        using JukeboxEncoder encoder = JukeboxTiny.Load();
        float[] clip = JukeboxTiny.NormalizedAudio();
        float[] shorter = clip[..70_000];
        // Longer than the context (196,608 samples): cut, as Embed cuts it.
        float[] longer = [.. clip, .. clip];
        float[][] clips = [clip, shorter, longer];

        IReadOnlyList<AudioEmbedding> batch = encoder.EmbedBatch(clips);
        Assert.Equal(clips.Length, batch.Count);
        for (int i = 0; i < clips.Length; i++)
        {
            AudioEmbedding alone = encoder.Embed(clips[i]);
            Assert.Equal((alone.Frames, alone.Width, alone.Tokens, alone.FramesPerSecond), (batch[i].Frames, batch[i].Width, batch[i].Tokens, batch[i].FramesPerSecond));
            double diff = alone.Values.Zip(batch[i].Values).Max(p => Math.Abs(p.First - p.Second));
            output.WriteLine($"clip {i}: {alone.Frames} frames, batched vs alone max |diff| {diff:E2}");
            Assert.True(diff <= 1e-5, $"clip {i}: max |diff| {diff:E2}");
        }
        Assert.Equal(encoder.Embed(clip).Values, encoder.EmbedBatch([clip])[0].Values);
    }

    [Fact]
    public void TheJukemirlibPathEmbedsTheClipsOneAfterAnother()
    {
        using JukeboxEncoder encoder = JukeboxTiny.Load();
        float[] clip = JukeboxTiny.NormalizedAudio();
        var options = new EmbedOptions { Path = ExtractionPath.Jukemirlib };
        float[] shorter = clip[..50_000];
        IReadOnlyList<AudioEmbedding> batch = encoder.EmbedBatch([clip, shorter], options);
        Assert.Equal(encoder.Embed(clip, options).Values, batch[0].Values);
        Assert.Equal(encoder.Embed(shorter, options).Values, batch[1].Values);
    }

    [Fact]
    public void ACancelledBatchStopsBeforeThePrior()
    {
        using JukeboxEncoder encoder = JukeboxTiny.Load();
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        float[] clip = JukeboxTiny.NormalizedAudio();
        Assert.ThrowsAny<OperationCanceledException>(() => encoder.EmbedBatch([clip, clip], ct: cts.Token));
    }
}
