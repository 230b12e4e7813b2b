using System.Globalization;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Deploy;

/// <summary>
/// The Dockerfiles in docker/, read without a container engine: multi-stage (SDK to runtime), a non-root user, the
/// TorchBackend variants of the model images, ports that match the settings and the manifests, and an entry point
/// that is the published project's assembly.
/// </summary>
public sealed partial class DockerfileTests
{
    /// <summary>The user of the .NET images ("app"), made the same in the CUDA stage; the manifests run pods as it.</summary>
    internal const int ImageUser = 1654;

    /// <summary>The project each image publishes. The encoder service and the gateway are being written; their paths are the specs'.</summary>
    private static readonly Dictionary<string, string> Projects = new(StringComparer.Ordinal)
    {
        ["language"] = "services/LLark.Language.Service/LLark.Language.Service.csproj",
        ["encoder"] = "services/LLark.Encoder.Service/LLark.Encoder.Service.csproj",
        ["gateway"] = "gateway/LLark.Gateway/LLark.Gateway.csproj",
    };

    private static readonly Dictionary<string, string> Cpu = new(StringComparer.Ordinal) { ["TORCH_BACKEND"] = "cpu" };
    private static readonly Dictionary<string, string> Cuda = new(StringComparer.Ordinal) { ["TORCH_BACKEND"] = "cuda" };

    public static TheoryData<string> Images => [.. Projects.Keys];

    public static TheoryData<string> ModelImages => ["language", "encoder"];

    [Theory]
    [MemberData(nameof(Images))]
    public void EachImageIsBuiltWithTheSdkAndRunsOnTheAspNetRuntime(string service)
    {
        Dockerfile file = Dockerfile.Load(service);
        Assert.True(file.Stages.Count >= 2, $"{service}: one stage");
        Dockerfile.Stage build = file.Named("build");
        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:", file.Resolve(build.From), StringComparison.Ordinal);
        Assert.Contains(build.All("RUN"), r => r.Contains("dotnet publish", StringComparison.Ordinal));
        var variants = service == "gateway" ? new[] { Cpu } : [Cpu, Cuda];
        foreach (var args in variants)
        {
            IReadOnlyList<Dockerfile.Stage> chain = file.FinalChain(args);
            string runtime = file.Resolve(chain[0].From, args);
            Assert.DoesNotContain("/sdk:", runtime, StringComparison.Ordinal);
            Assert.Matches(args == Cuda ? "^nvidia/cuda:[0-9.]+-(base|runtime)-ubuntu24.04$" : "^mcr.microsoft.com/dotnet/aspnet:", runtime);
            Assert.Contains(file.Final.All("COPY"), c => c.StartsWith("--from=build /app", StringComparison.Ordinal));
        }
    }

    [Theory]
    [MemberData(nameof(ModelImages))]
    public void TheModelImagesPickTheTorchBackendWithABuildArgument(string service)
    {
        Dockerfile file = Dockerfile.Load(service);
        Assert.Equal("cpu", file.GlobalArgs["TORCH_BACKEND"]);
        Dockerfile.Stage build = file.Named("build");
        // A global ARG is visible inside a stage only once the stage declares it again.
        Assert.Contains("TORCH_BACKEND", build.All("ARG"));
        string publish = Assert.Single(build.All("RUN"), r => r.Contains("dotnet publish", StringComparison.Ordinal));
        Assert.Contains("-p:TorchBackend=${TORCH_BACKEND}", publish, StringComparison.Ordinal);
        Assert.Equal("runtime-${TORCH_BACKEND}", file.Final.From);
        // The two values Directory.Build.targets knows.
        string targets = File.ReadAllText(Path.Combine(RepoPaths.Root, "Directory.Build.targets"));
        foreach (string backend in new[] { "cpu", "cuda" })
        {
            Assert.Contains($"'$(TorchBackend)' == '{backend}'", targets, StringComparison.Ordinal);
            file.Named($"runtime-{backend}");
        }
    }

    [Theory]
    [MemberData(nameof(ModelImages))]
    public void TheCudaVariantRunsBf16OnTheGpuAndTheCpuVariantFp32OnTheCpu(string service)
    {
        Dockerfile file = Dockerfile.Load(service);
        string section = WorkloadTests.Section(service);
        var cuda = file.FinalEnv(Cuda);
        Assert.Equal("cuda", cuda[$"LLark__{section}__Device"]);
        Assert.Equal("bf16", cuda[$"LLark__{section}__DType"]);
        var cpu = file.FinalEnv(Cpu);
        Assert.Equal("cpu", cpu[$"LLark__{section}__Device"]);
        Assert.Equal("fp32", cpu[$"LLark__{section}__DType"]);
        Assert.Contains(file.Named("runtime-cuda").All("RUN"), r => r.Contains($"useradd --uid {ImageUser}", StringComparison.Ordinal));
    }

    [Fact]
    public void TheGatewayImageHasNoTorchVariants()
    {
        Dockerfile file = Dockerfile.Load("gateway");
        Assert.DoesNotContain("TORCH_BACKEND", file.GlobalArgs.Keys);
        Assert.DoesNotContain(file.Stages.SelectMany(s => s.All("RUN")), r => r.Contains("TorchBackend", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void EachImageRunsAsTheNonRootUser(string service)
    {
        string user = Assert.Single(Dockerfile.Load(service).Final.All("USER"));
        Assert.Equal(ImageUser.ToString(CultureInfo.InvariantCulture), user);
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void EachImageExposesThePortsItListensOnAndTheManifestsUse(string service)
    {
        Dockerfile file = Dockerfile.Load(service);
        var env = file.FinalEnv();
        var listening = new[] { env["LLark__Listen__GrpcPort"], env["LLark__Listen__HttpPort"] }.Select(p => int.Parse(p, CultureInfo.InvariantCulture)).Order();
        var exposed = file.Final.All("EXPOSE").SelectMany(e => e.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(p => int.Parse(p, CultureInfo.InvariantCulture)).Order();
        Assert.Equal(listening, exposed);
        foreach (string overlay in Kustomize.Overlays)
        {
            var ports = Kustomize.Overlay(overlay).Get("Deployment", service).Container(service).Ports.Values.Order();
            Assert.Equal(listening, ports);
        }
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void TheEntryPointRunsTheAssemblyOfThePublishedProject(string service)
    {
        Dockerfile file = Dockerfile.Load(service);
        string publish = Assert.Single(file.Named("build").All("RUN"), r => r.Contains("dotnet publish", StringComparison.Ordinal));
        string project = Projects[service];
        Assert.Contains($"dotnet publish {project} ", publish, StringComparison.Ordinal);
        string assembly = Path.GetFileNameWithoutExtension(project);
        string csproj = Path.Combine(RepoPaths.Root, project);
        Assert.True(File.Exists(csproj), $"{project} does not exist");
        string? declared = XDocument.Load(csproj).Descendants("AssemblyName").Select(e => e.Value).SingleOrDefault();
        Assert.True(declared is null || declared == assembly, $"{project} names its assembly {declared}");
        Assert.Equal(new[] { "dotnet", $"{assembly}.dll" }, file.EntryPoint);
    }

    [Theory]
    [MemberData(nameof(ModelImages))]
    public void TheModelImagesCarryTheirBundledModelAsTheDefault(string service)
    {
        Dockerfile file = Dockerfile.Load(service);
        string modelPath = file.FinalEnv()[$"LLark__{WorkloadTests.Section(service)}__ModelPath"];
        string copy = Assert.Single(file.Final.All("COPY"), c => c.StartsWith("models/", StringComparison.Ordinal));
        string[] parts = copy.Split(' ');
        Assert.Equal(modelPath, parts[1].TrimEnd('/'));
        Assert.True(Directory.Exists(Path.Combine(RepoPaths.Root, parts[0])), $"{parts[0]} is not in the repository");
    }

    [Fact]
    public void TheBuildContextLetsInWhatTheImagesCopyAndNoBuildOutput()
    {
        string[] lines = [.. File.ReadAllLines(Path.Combine(RepoPaths.Root, ".dockerignore")).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))];
        Assert.Equal("*", lines[0]);
        var included = lines.Where(l => l.StartsWith('!')).Select(l => l[1..].TrimEnd('/')).ToHashSet(StringComparer.Ordinal);
        int lastInclude = Array.FindLastIndex(lines, l => l.StartsWith('!'));
        foreach (string output in new[] { "**/bin/", "**/obj/" }) Assert.True(Array.IndexOf(lines, output) > lastInclude, $"{output} must come after the re-inclusions");
        foreach (string service in Projects.Keys)
        {
            foreach (string copy in Dockerfile.Load(service).Stages.SelectMany(s => s.All("COPY")).Where(c => !c.StartsWith("--", StringComparison.Ordinal)))
            {
                string[] sources = copy.Split(' ', StringSplitOptions.RemoveEmptyEntries)[..^1];
                foreach (string source in sources.Select(s => s.TrimEnd('/')))
                {
                    Assert.True(included.Contains(source), $"{service}: COPY {source} is kept out by .dockerignore");
                    Assert.True(File.Exists(Path.Combine(RepoPaths.Root, source)) || Directory.Exists(Path.Combine(RepoPaths.Root, source)), $"{service}: COPY {source}: no such path");
                }
            }
        }
    }

    [Fact]
    public void TheDockerReadmeBuildsEveryImageUnderTheNameTheManifestsUse()
    {
        string readme = File.ReadAllText(Path.Combine(RepoPaths.Root, "docker", "README.md"));
        foreach (Match m in BuildCommand().Matches(readme))
        {
            string service = m.Groups["file"].Value;
            Assert.Equal($"llark/{service}", m.Groups["image"].Value);
        }
        foreach (string service in Projects.Keys) Assert.Contains($"-f docker/{service}.Dockerfile", readme, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"docker build -f docker/(?<file>\w+)\.Dockerfile\s+(--build-arg \S+\s+)?-t (?<image>[\w/]+):")]
    private static partial Regex BuildCommand();
}
