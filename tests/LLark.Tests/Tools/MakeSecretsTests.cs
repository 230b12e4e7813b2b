using System.Diagnostics;
using LLark.Tests.Checkpoints;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Tools;

/// <summary>tools/make-secrets.sh, which tools/run.sh runs before it starts anything: the secrets it leaves are the owner's alone.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class MakeSecretsTests
{
    private static readonly string[] Secrets = ["api-key", "api-keys", "internal-token"];

    private static void Run(string state)
    {
        using Process process = Process.Start(new ProcessStartInfo("bash", [Path.Combine(RepoPaths.Root, "tools", "make-secrets.sh"), state])
        {
            RedirectStandardError = true,
        })!;
        string errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, errors);
    }

    [Fact]
    public void TheKeyAndTheTokenAreReadableByTheirOwnerOnly()
    {
        using var dir = new TempDirectory();
        string state = Path.Combine(dir.Path, "state");
        Run(state);
        foreach (string name in Secrets)
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(state, name)));
        string key = File.ReadAllText(Path.Combine(state, "api-key"));
        Assert.Equal(48, key.Length);
        Assert.StartsWith("local:", File.ReadAllText(Path.Combine(state, "api-keys")), StringComparison.Ordinal);

        // A key an older run left readable to everyone is kept, and narrowed.
        File.SetUnixFileMode(Path.Combine(state, "api-key"), (UnixFileMode)0b110_100_100);
        Run(state);
        Assert.Equal(key, File.ReadAllText(Path.Combine(state, "api-key")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(state, "api-key")));
    }
}
