using LLark.Evaluation;

namespace LLark.Tests.Evaluation;

public sealed class MetricsTests
{
    private static MusicKey K(string label) => MusicKey.ParseLabel(label)!.Value;

    [Theory]
    [InlineData("C major", "C major", 1.0)]
    [InlineData("C major", "B# major", 1.0)]
    [InlineData("C major", "G major", 0.5)]   // estimate a fifth above
    [InlineData("A minor", "E minor", 0.5)]
    [InlineData("C major", "F major", 0.0)]   // a fifth below: mir_eval's default gives nothing
    [InlineData("C major", "A minor", 0.3)]   // relative minor
    [InlineData("A minor", "C major", 0.3)]   // relative major
    [InlineData("F# minor", "A major", 0.3)]
    [InlineData("C major", "E minor", 0.0)]
    [InlineData("C major", "C minor", 0.2)]   // parallel
    [InlineData("C minor", "C major", 0.2)]
    [InlineData("C major", "G minor", 0.0)]   // a fifth up, other mode
    [InlineData("C major", "D major", 0.0)]
    [InlineData("Eb major", "Bb major", 0.5)]
    public void WeightedKeyScoreFollowsMirEval(string reference, string estimate, double expected) =>
        Assert.Equal(expected, Metrics.KeyWeightedScore(K(reference), K(estimate)));

    [Fact]
    public void DescendingFifthsCountOnlyWhenAsked()
    {
        Assert.Equal(0.0, Metrics.KeyWeightedScore(K("C major"), K("F major")));
        Assert.Equal(0.5, Metrics.KeyWeightedScore(K("C major"), K("F major"), allowDescendingFifths: true));
        Assert.Equal(0.0, Metrics.KeyWeightedScore(K("C major"), null));
        Assert.Equal("unparsed", Metrics.KeyRelation(K("C major"), null));
        Assert.Equal("relative", Metrics.KeyRelation(K("C major"), K("A minor")));
    }

    [Theory]
    [InlineData(100, 104, true, true)]
    [InlineData(100, 96, true, true)]
    [InlineData(100, 104.1, false, false)]
    [InlineData(100, 95.9, false, false)]
    [InlineData(100, 200, false, true)]    // octave up
    [InlineData(100, 50, false, true)]     // octave down
    [InlineData(100, 208, false, true)]    // 4% of 200
    [InlineData(100, 208.5, false, false)]
    [InlineData(100, 300, false, true)]
    [InlineData(90, 30, false, true)]
    [InlineData(100, 150, false, false)]   // 3/2 is not allowed
    [InlineData(100, 400, false, false)]   // two octaves is not allowed
    public void TempoAccuracies(double reference, double estimate, bool acc1, bool acc2)
    {
        Assert.Equal(acc1, Metrics.TempoAcc1(reference, estimate));
        Assert.Equal(acc2, Metrics.TempoAcc2(reference, estimate));
    }

    [Fact]
    public void MissingTempoEstimatesMiss()
    {
        Assert.False(Metrics.TempoAcc1(120, null));
        Assert.False(Metrics.TempoAcc2(120, double.NaN));
    }

    [Fact]
    public void UniformKeyChanceIsTwoTwentyFourths()
    {
        // Per reference: 1 exact + 0.5 fifth + 0.3 relative + 0.2 parallel over 24 keys.
        ChanceLevel chance = Chance.UniformKey([K("C major"), K("F# minor")]);
        Assert.Equal(2.0 / 24, chance.Value, 12);
    }

    [Fact]
    public void BestConstantTempoCoversTheMostReferences()
    {
        (ChanceLevel acc1, double bpm) = Chance.BestConstantTempo([100, 102, 103, 150], Metrics.TempoAcc1, [1]);
        Assert.Equal(0.75, acc1.Value);
        Assert.InRange(bpm, 98.8, 104.1);
        (ChanceLevel acc2, _) = Chance.BestConstantTempo([100, 200, 50, 137], Metrics.TempoAcc2, Metrics.Acc2Factors);
        Assert.Equal(0.75, acc2.Value);
    }

    [Fact]
    public void MajorityChanceIsTheShareOfTheCommonestClass()
    {
        ChanceLevel c = Chance.Majority(["rock", "rock", "jazz", "pop"], g => g, (a, b) => a == b);
        Assert.Equal(0.5, c.Value);
        Assert.Contains("rock", c.How, StringComparison.Ordinal);
    }
}
