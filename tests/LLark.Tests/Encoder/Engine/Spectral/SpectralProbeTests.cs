using LLark.Data;
using LLark.Data.Synth;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Engine.Model;
using LLark.Encoder.Engine.Spectral;
using LLark.Evaluation;
using Xunit.Abstractions;

namespace LLark.Tests.Encoder.Engine.Spectral;

/// <summary>
/// The spectral frames carry tempo and key on rendered music, read with no training at all: the pooled tempogram's
/// peak and Krumhansl-Schmuckler key profiles on the pooled chroma. The engine README has the full measurement.
/// </summary>
[Trait("Category", "Heavy")]
public sealed class SpectralProbeTests(ITestOutputHelper output) : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "llark-spectral-" + Guid.NewGuid().ToString("N"));

    private static readonly double[] MajorProfile = [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88];
    private static readonly double[] MinorProfile = [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17];

    public void Dispose()
    {
        if (Directory.Exists(dir))
            Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public void PooledFramesGiveTempoAndKeyWithoutTraining()
    {
        SynthResult synth = SynthDataset.Run(new SynthOptions { OutDir = dir, Clips = 40, Seconds = 8, Seed = 2, SoundFonts = ["/usr/share/sounds/sf2/TimGM6mb.sf2"] });
        Assert.Empty(synth.Failures);
        Manifest manifest = Manifest.Load(Path.Combine(dir, SynthDataset.ManifestFile));
        using var encoder = new SpectralEncoder();
        int tempoAt = encoder.Config.MelBands + SpectralEncoderConfig.ChromaBins + 1;
        var acc2 = new List<bool>();
        var mirex = new List<double>();
        foreach (ClipRecord clip in manifest.Clips)
        {
            PreparedAudio audio = AudioFrontEnd.Prepare(File.ReadAllBytes(manifest.AudioPath(clip)), encoder.SampleRate, encoder.ContextSamples);
            double[] mean = PooledMean(encoder.Embed(audio.Samples));
            double[] gram = mean[tempoAt..];
            acc2.Add(Metrics.TempoAcc2(clip.TempoBpm!.Value, encoder.Tempi[Array.IndexOf(gram, gram.Max())]));
            mirex.Add(Metrics.KeyWeightedScore(MusicKey.ParseLabel(clip.Key)!.Value, KeyOf(mean.AsSpan(encoder.Config.MelBands, SpectralEncoderConfig.ChromaBins))));
        }
        output.WriteLine($"{manifest.Clips.Count} clips on TimGM6mb: tempo ACC2 {acc2.Average(a => a ? 1.0 : 0):F3}, key MIREX {mirex.Average():F3}");
        Assert.True(acc2.Average(a => a ? 1.0 : 0) >= 0.75, "tempo ACC2");
        Assert.True(mirex.Average() >= 0.5, "key MIREX");
    }

    private static double[] PooledMean(AudioEmbedding e)
    {
        var mean = new double[e.Width];
        for (int t = 0; t < e.Frames; t++)
        {
            for (int j = 0; j < e.Width; j++)
                mean[j] += e.Values[t * e.Width + j] / (double)e.Frames;
        }
        return mean;
    }

    /// <summary>The key whose rotated Krumhansl-Kessler profile correlates best with the chroma (row 0 = C).</summary>
    private static MusicKey KeyOf(ReadOnlySpan<double> chroma)
    {
        MusicKey best = MusicKey.All[0];
        double bestR = double.NegativeInfinity;
        foreach (MusicKey key in MusicKey.All)
        {
            double[] profile = key.Mode == KeyMode.Major ? MajorProfile : MinorProfile;
            double[] rotated = Enumerable.Range(0, 12).Select(p => profile[(p - key.Tonic + 12) % 12]).ToArray();
            double r = Correlation(chroma, rotated);
            if (r > bestR)
                (best, bestR) = (key, r);
        }
        return best;
    }

    private static double Correlation(ReadOnlySpan<double> a, double[] b)
    {
        double meanA = 0, meanB = b.Average();
        foreach (double x in a)
            meanA += x / a.Length;
        double ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < b.Length; i++)
        {
            ab += (a[i] - meanA) * (b[i] - meanB);
            aa += (a[i] - meanA) * (a[i] - meanA);
            bb += (b[i] - meanB) * (b[i] - meanB);
        }
        return ab / Math.Sqrt(aa * bb + 1e-30);
    }
}
