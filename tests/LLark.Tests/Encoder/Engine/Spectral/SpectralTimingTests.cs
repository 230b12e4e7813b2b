using System.Diagnostics;
using LLark.Encoder.Engine.Spectral;
using Xunit.Abstractions;

namespace LLark.Tests.Encoder.Engine.Spectral;

/// <summary>Runs alone, after the parallel tests: the process CPU time it prints would count their threads too.</summary>
[CollectionDefinition(nameof(SpectralTimingTests), DisableParallelization = true)]
public sealed class SpectralTimingRunsAlone;

/// <summary>Prints what a 25 s clip costs to encode; speed is reported, never asserted.</summary>
[Collection(nameof(SpectralTimingTests))]
public sealed class SpectralTimingTests(ITestOutputHelper output)
{
    private static readonly SpectralEncoder Encoder = new();

    [Fact]
    public void Encode25SecondsOnOneThread()
    {
        var random = new Random(5);
        float[] clip = Enumerable.Range(0, 25 * 22050).Select(i => (float)(0.3 * Math.Sin(i * 0.05) + 0.1 * (random.NextDouble() - 0.5))).ToArray();
        Encoder.Embed(clip);
        var wall = new List<double>();
        var cpu = new List<double>();
        using var process = Process.GetCurrentProcess();
        for (int run = 0; run < 5; run++)
        {
            process.Refresh();
            TimeSpan cpuBefore = process.TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            Encoder.Embed(clip);
            wall.Add(clock.Elapsed.TotalMilliseconds);
            process.Refresh();
            cpu.Add((process.TotalProcessorTime - cpuBefore).TotalMilliseconds);
        }
        // CPU time, not only wall time: on a shared machine the wall clock counts other processes' turns too.
        output.WriteLine($"25 s at 22,050 Hz on one thread: wall {wall.Min():F1} ms best, {wall.Average():F1} ms mean; process CPU {cpu.Min():F1} ms best of 5");
    }
}
