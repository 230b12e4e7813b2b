using LLark.Language.Engine.Generation;

namespace LLark.Tests.Language.Engine.Generation;

/// <summary>
/// The SIMD sampler against the plain algorithm it replaced: sort the whole row by logit (ties by id), cut to top-k and
/// top-p, draw from the same seeded Random.
/// </summary>
public sealed class TokenSamplerTests
{
    private const int Vocab = 32004;

    private static float[] Row(int seed, float scale)
    {
        var random = new Random(seed);
        var row = new float[Vocab];
        for (int i = 0; i < Vocab; i++) row[i] = (float)(scale * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        // A few exact ties among the best, to pin the tie order (lower id first).
        row[100] = row[31000] = row.Max() + 0.5f;
        return row;
    }

    /// <summary>The whole-row sort, as the sampler did before its candidate search: the tokens kept, highest first, and their weights.</summary>
    private static (int[] Kept, double[] Probs) Reference(float[] logits, float temperature, int topK, float topP)
    {
        float[] l = [.. logits.Select(x => x * (1f / temperature))];
        int[] order = [.. Enumerable.Range(0, l.Length)];
        Array.Sort(order, (a, b) => l[b].CompareTo(l[a]) is var c && c != 0 ? c : a.CompareTo(b));
        int keep = topK > 0 ? Math.Min(topK, l.Length) : l.Length;
        double max = l[order[0]];
        double[] probs = [.. order.Take(keep).Select(i => Math.Exp(l[i] - max))];
        if (topP < 1f)
        {
            double total = probs.Sum(), cumulative = 0;
            int cut = keep;
            for (int i = 0; i < keep; i++)
            {
                cumulative += probs[i] / total;
                if (cumulative >= topP) { cut = i + 1; break; }
            }
            keep = cut;
        }
        return (order[..keep], probs[..keep]);
    }

    private static int Pick((int[] Kept, double[] Probs) reference, Random random)
    {
        double r = random.NextDouble() * reference.Probs.Sum();
        for (int i = 0; i < reference.Kept.Length; i++)
        {
            r -= reference.Probs[i];
            if (r < 0) return reference.Kept[i];
        }
        return reference.Kept[^1];
    }

    [Theory]
    [InlineData(40, 1f, 0.7f)]
    [InlineData(1, 1f, 1.3f)]
    [InlineData(50, 0.9f, 1f)]
    [InlineData(5000, 0.95f, 2f)]
    public void TopKDrawsAreThoseOfAWholeRowSort(int topK, float topP, float temperature)
    {
        const ulong seed = 12345;
        var sampler = new TokenSampler(new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP, Seed = seed });
        var random = new Random(unchecked((int)(seed ^ (seed >> 32))));
        for (int draw = 0; draw < 60; draw++)
        {
            float[] row = Row(draw, scale: draw % 3 == 0 ? 0.5f : 4f);
            Assert.Equal(Pick(Reference(row, temperature, topK, topP), random), sampler.Next(row, null));
        }
    }

    [Theory]
    [InlineData(0.9f, 1f)]
    [InlineData(0.5f, 0.7f)]
    [InlineData(0.999f, 3f)]
    public void TopPAloneKeepsTheNucleusOfAWholeRowSort(float topP, float temperature)
    {
        // Without top-k the nucleus is measured against the whole row, whose total the sampler sums with SIMD (in single
        // precision) instead of in double: the kept set may differ only at its last token, never in which tokens lead.
        var sampler = new TokenSampler(new SamplingOptions { Temperature = temperature, TopP = topP, Seed = 5 });
        var counts = new Dictionary<int, int>();
        float[] row = Row(77, scale: 3f);
        (int[] kept, double[] probs) = Reference(row, temperature, 0, topP);
        var nucleus = kept.ToHashSet();
        const int draws = 3000;
        for (int i = 0; i < draws; i++)
        {
            int token = sampler.Next(row, null);
            Assert.Contains(token, nucleus);
            counts[token] = counts.GetValueOrDefault(token) + 1;
        }
        // The most likely token is drawn about as often as its share of the nucleus says.
        double share = probs[0] / probs.Sum();
        Assert.InRange(counts.GetValueOrDefault(kept[0]) / (double)draws, share - 0.04, share + 0.04);
    }

    [Fact]
    public void ADrawWalksTheCumulativeWeightsAndNeverLandsOnAZeroWeight()
    {
        float[] w = new float[2000];
        for (int i = 0; i < w.Length; i++) w[i] = i % 7 == 3 ? 0f : 1f;
        int nonZero = w.Count(x => x > 0);
        Assert.Equal(0, TokenSampler.Draw(w, 0.0));
        Assert.Equal(w.Length - 1, TokenSampler.Draw(w, 1.0 - 1e-12));
        for (int j = 0; j < 50; j++)
        {
            double u = (j + 0.5) / 50;
            int index = TokenSampler.Draw(w, u);
            Assert.NotEqual(0f, w[index]);
            // index is the (u * nonZero)-th non-zero weight.
            Assert.Equal((int)(u * nonZero), w.Take(index).Count(x => x > 0));
        }
        // All weight in one id, in any block.
        var one = new float[5000];
        one[4321] = 2f;
        Assert.Equal(4321, TokenSampler.Draw(one, 0.99));
        Assert.Equal(4321, TokenSampler.Draw(one, 0.0));
    }

    [Fact]
    public void ArgMaxTakesTheFirstOfTiedMaximaAndLogProbMatchesDoublePrecision()
    {
        Assert.Equal(1, TokenSampler.ArgMax([1f, 3f, 3f, 2f]));
        float[] row = Row(3, scale: 2f);
        Assert.Equal(100, TokenSampler.ArgMax(row));
        double max = row.Max(), sum = row.Sum(x => Math.Exp(x - max));
        foreach (int id in new[] { 0, 100, 31000, Vocab - 1 })
            Assert.Equal(row[id] - max - Math.Log(sum), TokenSampler.LogProb(row, id), 1e-4);
    }

    [Theory]
    [InlineData(0f, 0, 1f)]
    [InlineData(1f, 0, 1f)]
    [InlineData(0.8f, 5, 0.9f)]
    public void ANaNLogitIsNeverPicked(float temperature, int topK, float topP)
    {
        float[] row = [.. Enumerable.Range(0, 1000).Select(i => (float)Math.Sin(i))];
        for (int i = 0; i < row.Length; i += 7) row[i] = float.NaN;
        var sampler = new TokenSampler(new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP, Seed = 3 });
        for (int draw = 0; draw < 200; draw++)
            Assert.False(float.IsNaN(row[sampler.Next(row, null)]));
        Assert.Equal(Array.IndexOf(row, row.Where(v => !float.IsNaN(v)).Max()), TokenSampler.ArgMax(row));
    }
}
