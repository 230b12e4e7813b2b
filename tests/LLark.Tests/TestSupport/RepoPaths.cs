namespace LLark.Tests.TestSupport;

/// <summary>Locates the repository (and its committed fixtures) from the test binary's folder.</summary>
internal static class RepoPaths
{
    private static readonly Lazy<string> RootPath = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LLark.Services.sln"))) return dir.FullName;
        }
        throw new DirectoryNotFoundException($"no LLark.Services.sln above {AppContext.BaseDirectory}");
    });

    public static string Root => RootPath.Value;

    public static string Fixture(params string[] parts) => Path.Combine([Root, "tests", "fixtures", .. parts]);
}
