using ScottPlot;

namespace LLark.Data.Plots;

/// <summary>One named series of a line or scatter chart: points (X[i], Y[i]).</summary>
public sealed record Series(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y)
{
    internal void Check()
    {
        if (X.Count != Y.Count) throw new ArgumentException($"series '{Name}' has {X.Count} x values and {Y.Count} y values");
    }
}

/// <summary>Size and labels every chart has.</summary>
public sealed record ChartText(string Title, string XLabel, string YLabel)
{
    public int Width { get; init; } = 800;

    public int Height { get; init; } = 560;
}

/// <summary>
/// PNG charts for training and evaluation reports (loss curves, predicted-vs-true scatter plots, confusion heatmaps),
/// drawn headless with ScottPlot (SkiaSharp's native library ships in its NuGet package; no display is needed).
/// Every method writes one PNG file and creates its folder.
/// </summary>
public static class Charts
{
    /// <summary>
    /// A line chart: one polyline per series, with a legend when there is more than one series. With <paramref name="logY"/>
    /// the y axis is log10 (ticks labelled with the values); values at or below 0 are left out.
    /// </summary>
    public static void Line(string path, ChartText text, IReadOnlyList<Series> series, bool logY = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(series);
        var plot = new Plot();
        foreach (Series s in series)
        {
            s.Check();
            double[] ys = logY ? [.. s.Y.Select(y => y > 0 ? Math.Log10(y) : double.NaN)] : [.. s.Y];
            var line = plot.Add.ScatterLine(s.X.ToArray(), ys);
            line.LegendText = s.Name;
            line.LineWidth = 2;
        }
        if (logY)
        {
            plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
            {
                LabelFormatter = y => Math.Pow(10, y).ToString("G3", System.Globalization.CultureInfo.InvariantCulture),
            };
        }
        Save(plot, path, text, legend: series.Count > 1);
    }

    /// <summary>
    /// A scatter chart: markers only, one colour per series. With <paramref name="diagonal"/>, the line y = x is drawn
    /// across the data's range (for predicted-versus-true plots).
    /// </summary>
    public static void Scatter(string path, ChartText text, IReadOnlyList<Series> series, bool diagonal = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(series);
        var plot = new Plot();
        foreach (Series s in series)
        {
            s.Check();
            var points = plot.Add.ScatterPoints(s.X.ToArray(), s.Y.ToArray());
            points.LegendText = s.Name;
            points.MarkerSize = 9;
        }
        double[] all = [.. series.SelectMany(s => s.X.Concat(s.Y)).Where(double.IsFinite)];
        if (diagonal && all.Length > 0)
        {
            double low = all.Min(), high = all.Max();
            if (high <= low) high = low + 1;
            var line = plot.Add.Line(low, low, high, high);
            line.LineColor = Colors.Gray;
            line.LinePattern = LinePattern.Dashed;
            line.LegendText = "y = x";
        }
        Save(plot, path, text, legend: series.Count > 1 || diagonal);
    }

    /// <summary>
    /// A heatmap of <paramref name="values"/>[row, column], row 0 at the top, each cell labelled with its value, with
    /// row and column labels on the axes and a colour bar.
    /// </summary>
    public static void Heatmap(string path, ChartText text, double[,] values, IReadOnlyList<string> rowLabels, IReadOnlyList<string> columnLabels,
        string cellFormat = "G4")
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(rowLabels);
        ArgumentNullException.ThrowIfNull(columnLabels);
        int rows = values.GetLength(0), columns = values.GetLength(1);
        if (rows != rowLabels.Count || columns != columnLabels.Count)
            throw new ArgumentException($"{rows}x{columns} values need {rows} row labels and {columns} column labels, not {rowLabels.Count} and {columnLabels.Count}");
        var plot = new Plot();
        var map = plot.Add.Heatmap(values);
        map.Colormap = new ScottPlot.Colormaps.Viridis();
        plot.Add.ColorBar(map);
        // ScottPlot puts row 0 at the top and centres cell (r, c) on x = c, y = rows - 1 - r.
        double max = 0;
        foreach (double v in values) if (double.IsFinite(v)) max = Math.Max(max, v);
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < columns; c++)
            {
                double v = values[r, c];
                if (v == 0 || !double.IsFinite(v)) continue;
                var label = plot.Add.Text(v.ToString(cellFormat, System.Globalization.CultureInfo.InvariantCulture), c, rows - 1 - r);
                label.LabelAlignment = Alignment.MiddleCenter;
                label.LabelFontColor = v > max / 2 ? Colors.Black : Colors.White;
                label.LabelFontSize = 12;
            }
        }
        plot.Axes.Bottom.SetTicks([.. Enumerable.Range(0, columns).Select(c => (double)c)], [.. columnLabels]);
        plot.Axes.Left.SetTicks([.. Enumerable.Range(0, rows).Select(r => (double)(rows - 1 - r))], [.. rowLabels]);
        Save(plot, path, text, legend: false);
    }

    private static void Save(Plot plot, string path, ChartText text, bool legend)
    {
        plot.Title(text.Title);
        plot.XLabel(text.XLabel);
        plot.YLabel(text.YLabel);
        // Outside the data area, so that it never hides points (an octave error sits in a corner).
        if (legend) plot.ShowLegend(Edge.Right);
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        plot.SavePng(full, text.Width, text.Height);
    }
}
