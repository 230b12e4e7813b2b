using LLark.Data.Plots;

namespace LLark.Tests.Evaluation;

public sealed class ChartsTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("llark-plots-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void LineChartIsAValidPngWithDrawnSeries()
    {
        string path = Path.Combine(dir, "sub", "loss.png");
        double[] steps = [.. Enumerable.Range(0, 50).Select(i => (double)i)];
        Charts.Line(path, new ChartText("Training loss", "step", "loss") { Width = 640, Height = 400 },
        [
            new Series("train", steps, [.. steps.Select(s => 3 * Math.Exp(-s / 20) + 0.5)]),
            new Series("validation", steps, [.. steps.Select(s => 3.2 * Math.Exp(-s / 25) + 0.7)]),
        ]);
        PngFile png = PngFile.Read(path);
        Assert.Equal((640, 400), (png.Width, png.Height));
        Assert.True(png.DrawnPixels() > 2000, $"{png.DrawnPixels()} drawn pixels");
        // Two series in two distinct saturated colours.
        int coloured = png.CountColour((r, g, b) => Math.Max(r, Math.Max(g, b)) - Math.Min(r, Math.Min(g, b)) > 80);
        Assert.True(coloured > 300, $"{coloured} coloured pixels");
    }

    [Fact]
    public void LogLineChartLeavesOutNonPositiveValues()
    {
        string path = Path.Combine(dir, "log.png");
        Charts.Line(path, new ChartText("log", "x", "y"), [new Series("s", [1, 2, 3, 4], [10, 1, 0, 0.1])], logY: true);
        Assert.True(PngFile.Read(path).DrawnPixels() > 1000);
    }

    [Fact]
    public void ScatterAndHeatmapDraw()
    {
        string scatter = Path.Combine(dir, "scatter.png");
        Charts.Scatter(scatter, new ChartText("tempo", "true", "predicted"),
            [new Series("model", [100, 120, 140], [98, 240, 141]), new Series("baseline", [100, 120, 140], [101, 119, 70])], diagonal: true);
        Assert.True(PngFile.Read(scatter).DrawnPixels() > 1000);

        string heat = Path.Combine(dir, "heat.png");
        var values = new double[2, 12];
        values[0, 0] = 5;
        values[1, 9] = 2;
        Charts.Heatmap(heat, new ChartText("keys", "interval", "mode") { Width = 900, Height = 300 }, values, ["same", "other"],
            [.. Enumerable.Range(0, 12).Select(i => $"+{i}")]);
        PngFile png = PngFile.Read(heat);
        Assert.Equal((900, 300), (png.Width, png.Height));
        // Viridis: the maximum is yellow, zero is dark purple; both must be there.
        Assert.True(png.CountColour((r, g, b) => r > 200 && g > 200 && b < 100) > 100, "yellow cells");
        Assert.True(png.CountColour((r, g, b) => r < 90 && g < 30 && b > 60) > 1000, "purple cells");
    }

    [Fact]
    public void MismatchedInputsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => Charts.Scatter(Path.Combine(dir, "x.png"), new ChartText("t", "x", "y"), [new Series("s", [1, 2], [1])]));
        Assert.Throws<ArgumentException>(() => Charts.Heatmap(Path.Combine(dir, "h.png"), new ChartText("t", "x", "y"), new double[2, 3], ["a"], ["a", "b", "c"]));
    }
}
