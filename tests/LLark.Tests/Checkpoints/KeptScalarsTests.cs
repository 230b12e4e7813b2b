using System.Text.RegularExpressions;
using Xunit;

namespace LLark.Tests.Checkpoints;

/// <summary>
/// TorchSharp calls that pass a temporary Scalar, which a garbage collection can free while libtorch still reads it
/// (see LLark.Checkpoints.KeptScalars). A race like that cannot be caught by running a test once, so the sources are
/// checked for the forms a pattern can see. A double variable passed where a Scalar goes (<c>x.div(total)</c>) or a
/// <c>tensor + tensor</c> (an add with a temporary alpha of 1) can only be found by reading the code; the audit that
/// found the last of them is in the notes of the change that added these patterns.
/// </summary>
public class KeptScalarsTests
{
    private static readonly string[] CodeFolders = ["common", "engines", "pipeline", "services", "tools", "gateway"];

    /// <summary>Each form, and what to write instead.</summary>
    public static TheoryData<string, string> Forms => new()
    {
        // Tensor.square() is pow(2) with a temporary: "Unknown scalar type" after 880 steps of llark train.
        { @"\.square\(\)", "pow(KeptScalars.Two)" },
        // arange(n) and arange(a, b) add temporaries of their own (the start 0 and the step 1) to the numbers passed.
        { @"\barange\((?!IntZero\b|first\b)", "KeptScalars.Range(start, stop, device), or arange(IntZero, stop, step) with kept Scalars" },
        // A number where a Scalar goes converts to a new native Scalar for that one call.
        { @"\.(add|sub|mul|div|pow|ge|gt|le|lt|eq|ne|clamp_min|clamp_max|fill|remainder|fmod)_?\(\s*-?[0-9]", "a KeptScalars constant, a Scalar field or a using local" },
        { @"\.(masked_fill|index_fill|index_add)_?\([^;]*,\s*-?[0-9][0-9.e-]*\s*\)", "a KeptScalars constant, a Scalar field or a using local" },
        // add(x) and add_(x) pass a temporary alpha of 1, even when x is a kept Scalar.
        { @"\.add_?\([^,()]*\)", "add(x, One)" },
    };

    [Theory]
    [MemberData(nameof(Forms))]
    public void NoCodePassesATemporaryScalar(string pattern, string instead)
    {
        var form = new Regex(pattern);
        string root = CheckpointFixtures.RepoRoot;
        Assert.True(File.Exists(Path.Combine(root, "engines", "LLark.Language.Engine", "Model", "RmsNorm.cs")), "the scan must see the engine sources");
        var hits = CodeFolders
            .SelectMany(folder => Directory.EnumerateFiles(Path.Combine(root, folder), "*.cs", SearchOption.AllDirectories))
            .Where(f => !Path.GetRelativePath(root, f).Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj"))
            .Where(f => Path.GetFileName(f) != "KeptScalars.cs")
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (File: f, Number: i + 1, Line: line.Trim())))
            .Where(x => !x.Line.StartsWith("//", StringComparison.Ordinal) && !x.Line.StartsWith("///", StringComparison.Ordinal) && form.IsMatch(x.Line))
            .Select(x => $"{Path.GetRelativePath(root, x.File)}:{x.Number}: {x.Line}")
            .ToList();
        Assert.True(hits.Count == 0, $"a temporary Scalar; use {instead}:\n" + string.Join("\n", hits));
    }

    [Theory]
    [InlineData("Tensor y = x.square();", 0)]
    [InlineData("Tensor r = arange(n, dtype: ScalarType.Int64);", 1)]
    [InlineData("Tensor r = arange(IntZero, end, IntOne);", -1)]
    [InlineData("return loss.div(2.0);", 2)]
    [InlineData("kElem.fill_(1);", 2)]
    [InlineData("kElem.fill_(One);", -1)]
    [InlineData("scores = scores.masked_fill(mask, -1e9);", 3)]
    [InlineData("scores = scores.masked_fill(mask, Masked);", -1)]
    [InlineData("Tensor z = h.add(a);", 4)]
    [InlineData("Tensor z = h.add(a, One);", -1)]
    [InlineData("Tensor z = h.add_(eps);", 4)]
    public void ThePatternsCatchTheFormsTheyNameAndNotTheSafeOnes(string line, int form)
    {
        string[] patterns = Forms.Select(row => (string)row[0]).ToArray();
        for (int i = 0; i < patterns.Length; i++)
            Assert.True(Regex.IsMatch(line, patterns[i]) == (i == form), $"pattern {i} on \"{line}\"");
    }
}
