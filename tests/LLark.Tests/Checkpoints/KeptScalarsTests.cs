using System.Text.RegularExpressions;
using Xunit;

namespace LLark.Tests.Checkpoints;

/// <summary>
/// TorchSharp calls that build a temporary Scalar inside themselves, which a garbage collection can free while libtorch
/// still reads it (see LLark.Checkpoints.KeptScalars). They cannot be caught by running a test once, so the sources are
/// checked for them instead.
/// </summary>
public class KeptScalarsTests
{
    private static readonly string[] CodeFolders = ["services", "tools", "gateway"];

    [Fact]
    public void NoCodeCallsTensorSquare()
    {
        // Tensor.square() is pow(2) with a temporary Scalar: "Unknown scalar type" after 880 steps of llark train.
        var square = new Regex(@"\.square\(\)");
        string root = CheckpointFixtures.RepoRoot;
        Assert.True(File.Exists(Path.Combine(root, "services", "LLark.Language.Engine", "Model", "RmsNorm.cs")), "the scan must see the engine sources");
        var hits = CodeFolders
            .SelectMany(folder => Directory.EnumerateFiles(Path.Combine(root, folder), "*.cs", SearchOption.AllDirectories))
            .Where(f => !Path.GetRelativePath(root, f).Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj"))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (File: f, Number: i + 1, Line: line.Trim())))
            .Where(x => square.IsMatch(x.Line) && !x.Line.StartsWith("//", StringComparison.Ordinal))
            .Select(x => $"{Path.GetRelativePath(root, x.File)}:{x.Number}: {x.Line}")
            .ToList();
        Assert.True(hits.Count == 0, "use pow(KeptScalars.Two) instead of square():\n" + string.Join("\n", hits));
    }
}
