using System.Diagnostics;

namespace LLark.Tests.Cli;

/// <summary>Runs the built <c>llark</c> and <c>llark-bench</c> tools (copied beside the tests) as their users do: a process, stdout, exit code.</summary>
internal static class LlarkProcess
{
    public sealed record Output(int ExitCode, string Stdout, string Stderr);

    public static Output Run(params string[] args) => RunTool("llark", args);

    public static Output RunBench(params string[] args) => RunTool("llark-bench", args);

    private static Output RunTool(string tool, string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = System.Text.Encoding.UTF8,
            WorkingDirectory = TestSupport.RepoPaths.Root,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, tool + ".dll"));
        foreach (string a in args) start.ArgumentList.Add(a);
        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        // The limit only has to catch hangs: on a busy machine libtorch's spinning worker threads make a short run many times slower.
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish");
        }
        return new Output(process.ExitCode, stdout.Result, stderr.Result);
    }
}
