using System.Text.Json.Nodes;
using LLark.Encoder.Engine.Model;

namespace LLark.Tests.Encoder.Engine.Model;

/// <summary>The label conditioner's bins, exactly as Jukebox's float32 arithmetic puts them.</summary>
public sealed class ConditioningTests
{
    private static int[] Ints(JsonNode? node) => node!.AsArray().Select(n => n!.GetValue<int>()).ToArray();

    [Fact]
    public void TheTinyFixturesBinsMatch()
    {
        JukeboxEncoderConfig config = JukeboxTiny.Config();
        var labels = ConditioningLabels.ForExtraction(config);
        Assert.Equal(2734080, labels.TotalLengthSamples);
        ConditioningBins bins = ConditioningMath.Bins(config.Prior, labels, config.ContextSamples, config.Prior.NCtx);
        JsonNode expected = JukeboxTiny.Fixture["conditioning"]!["bins"]!;
        Assert.Equal(Ints(expected["total_length_bin"])[0], bins.TotalLength);
        int[] absolute = Ints(expected["absolute_pos_bins"]), relative = Ints(expected["relative_pos_bins"]);
        Assert.Equal(absolute, bins.AbsolutePosition[..absolute.Length]);
        Assert.Equal(relative, bins.RelativePosition[..relative.Length]);
        Assert.Equal([0, 0, 0, 0, 0], bins.GenreIds);
        Assert.Equal([true, false, false, false, false], bins.GenreMask);
    }

    [Fact]
    public void TheReal5bExampleBinsMatch()
    {
        JsonNode example = JsonNode.Parse(File.ReadAllText(JukeboxTiny.File("real5b_cond_bins_example.json")))!;
        long[] y = example["y"]!.AsArray().Select(n => n!.GetValue<long>()).ToArray();
        JukeboxEncoderConfig config = JukeboxEncoderConfig.Preset5b;
        Assert.Equal(y[2], config.ContextSamples);
        var labels = new ConditioningLabels { TotalLengthSamples = y[0], OffsetSamples = y[1], ArtistId = (int)y[3], GenreIds = [(int)y[4]] };
        ConditioningBins bins = ConditioningMath.Bins(config.Prior, labels, y[2], config.Prior.NCtx);
        Assert.Equal(Ints(example["total_length_bin"])[0], bins.TotalLength);
        Assert.Equal(Ints(example["absolute_pos_bins"]), bins.AbsolutePosition);
        Assert.Equal(Ints(example["relative_pos_bins"]), bins.RelativePosition);
    }

    [Theory]
    [InlineData(60 * 44100 - 1, 0)]
    [InlineData(600 * 44100, 0)]
    [InlineData(62 * 44100, -1)]
    public void LabelsOutsideThePriorsRangesAreRefused(long total, long offset)
    {
        var labels = new ConditioningLabels { TotalLengthSamples = total, OffsetSamples = offset };
        Assert.Throws<ArgumentOutOfRangeException>(() => ConditioningMath.Bins(JukeboxEncoderConfig.Preset5b.Prior, labels, 1 << 20, 8192));
    }
}
