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
    [Fact]
    public void NoServiceCodeCallsTensorSquare()
    {
        // Tensor.square() is pow(2) with a temporary Scalar: "Unknown scalar type" after 880 steps of llark train.
        var square = new Regex(@"\.square\(\)");
        string services = Path.Combine(CheckpointFixtures.RepoRoot, "services");
        var hits = Directory.EnumerateFiles(services, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (f, i, line)))
            .Where(x => square.IsMatch(x.line) && !x.line.TrimStart().StartsWith("//", StringComparison.Ordinal))
            .Select(x => $"{Path.GetRelativePath(services, x.f)}:{x.i + 1}: {x.line.Trim()}")
            .ToList();
        Assert.True(File.Exists(Path.Combine(services, "LLark.Language.Engine", "Model", "RmsNorm.cs")), "the scan must see the engine sources");
        Assert.True(hits.Count == 0, "use pow(KeptScalars.Two) instead of square():\n" + string.Join("\n", hits));
    }
}
