using LLark.Tests.Checkpoints;
using LLark.Tests.Deploy;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Contracts;

/// <summary>
/// The gRPC contracts that clients in many languages compile: protos/ passes `buf lint` (protos/buf.yaml: STANDARD, with
/// its named exceptions) and `buf breaking` at the FILE level against the released contract, the image in
/// protos/released/ (its README says how it was made). buf is the npm package that tools/setup.sh installs in tools/buf.
/// </summary>
public sealed class ProtoContractTests
{
    private static string Protos => Path.Combine(RepoPaths.Root, "protos");

    private static string Released => Path.Combine(Protos, "released", "v1.binpb");

    private static ProcessRun.Output Buf(string workingDirectory, params string[] args)
    {
        string buf = Path.Combine(RepoPaths.Root, "tools", "buf", "node_modules", ".bin", "buf");
        Assert.True(File.Exists(buf), $"{buf} is missing: run tools/setup.sh, which installs buf from npm");
        return ProcessRun.Run(buf, args, "buf checks the protos", workingDirectory);
    }

    [Fact]
    public void TheProtosPassBufLint()
    {
        ProcessRun.Output lint = Buf(Protos, "lint");
        Assert.True(lint.ExitCode == 0, lint.Stdout + lint.Stderr);
    }

    [Fact]
    public void TheProtosBreakNoClientOfTheReleasedContract()
    {
        ProcessRun.Output breaking = Buf(Protos, "breaking", "--against", Released);
        Assert.True(breaking.ExitCode == 0, breaking.Stdout + breaking.Stderr);
    }

    [Fact]
    public void AChangedFieldTypeIsCaughtAsBreaking()
    {
        using var copy = new TempDirectory();
        foreach (string file in Directory.GetFiles(Protos, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(copy.Path, Path.GetRelativePath(Protos, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        string encoder = Path.Combine(copy.Path, "llark", "encoder", "v1", "encoder.proto");
        string text = File.ReadAllText(encoder);
        Assert.Contains("string embedding_id = 1;", text, StringComparison.Ordinal);
        File.WriteAllText(encoder, text.Replace("string embedding_id = 1;", "bytes embedding_id = 1;", StringComparison.Ordinal));

        ProcessRun.Output breaking = Buf(copy.Path, "breaking", "--against", Released);
        Assert.NotEqual(0, breaking.ExitCode);
        Assert.Contains("\"embedding_id\"", breaking.Stdout + breaking.Stderr, StringComparison.Ordinal);
        Assert.Contains("changed type from \"string\" to \"bytes\"", breaking.Stdout + breaking.Stderr, StringComparison.Ordinal);
    }
}
