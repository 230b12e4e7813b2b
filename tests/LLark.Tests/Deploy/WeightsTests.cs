using System.Security.Cryptography;
using System.Text.Json.Nodes;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Deploy;

/// <summary>
/// The model pods' weights: each overlay pins them in a sha256sum manifest, and k8s/base/verify-weights.sh (the init
/// container before each model service) refuses a folder that differs from it. The script is run here on the bundled
/// models with the dev overlay's manifests, and on copies spoiled in each way it must catch.
/// </summary>
[Trait("Category", "Kubectl")]
public sealed class WeightsTests
{
    private static readonly Dictionary<string, string> BundledModels = new(StringComparer.Ordinal)
    {
        ["language"] = "llark-demo",
        ["encoder"] = "spectral",
    };

    private static readonly string[] ReadOnlyMany = ["ReadOnlyMany"];
    private static readonly string[] ReadWriteMany = ["ReadWriteMany"];

    private static string Script => Path.Combine(RepoPaths.Root, "k8s", "base", "verify-weights.sh");

    private static string DevManifest(string service) => Path.Combine(RepoPaths.Root, "k8s", "overlays", "dev-cpu", "weights", $"{service}.sha256");

    public static TheoryData<string> Services => ["language", "encoder"];

    private static ProcessRun.Output Verify(string folder, string manifest) =>
        ProcessRun.Run("sh", [Script, folder, manifest], "a POSIX shell with coreutils runs verify-weights.sh");

    [Fact]
    public void TheDevEncoderAndTheEncoderImagePoolAtTheFrameRateTheBundledLLarkWasTrainedOn()
    {
        // A language service refuses embeddings at another rate, so a mismatch here would fail every request.
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(RepoPaths.Root, "models", BundledModels["language"], "config.json")))!;
        string fps = ((double)config["mm_audio_fps"]!).ToString(System.Globalization.CultureInfo.InvariantCulture);
        Container encoder = Kustomize.Overlay("dev-cpu").Workload("encoder").Container("encoder");
        Assert.Equal(fps, encoder.Env["LLark__Encoder__Fps"]);
        Assert.Equal(fps, Dockerfile.Load("encoder").FinalEnv()["LLark__Encoder__Fps"]);
    }

    [Theory]
    [MemberData(nameof(Services))]
    public void TheDevManifestPinsExactlyTheBundledModel(string service) =>
        AssertPinsExactly(DevManifest(service), Path.Combine(RepoPaths.Root, "models", BundledModels[service]));

    [Fact]
    public void TheSpectralOverlayPinsExactlyTheSpectralEncoderItsImageCarries()
    {
        string folder = Path.Combine(RepoPaths.Root, "models", "spectral");
        AssertPinsExactly(SpectralManifest, folder);
        ProcessRun.Output output = Verify(folder, SpectralManifest);
        Assert.True(output.ExitCode == 0, output.Stderr);
    }

    [Theory]
    [InlineData("dev-cpu")]
    [InlineData("prod-spectral")]
    public void TheSpectralEncoderCopiesTheFolderItsImageCarriesIntoItsWeightsFolder(string overlay)
    {
        // No weights volume: the seed-weights container copies the image's models/spectral, which verify-weights checks.
        KubeObject d = Kustomize.Overlay(overlay).Get("Deployment", "encoder");
        Container seed = d.InitContainers.First();
        Assert.Equal("seed-weights", seed.Name);
        Assert.NotNull(d.Volume("weights")["emptyDir"]);
        string modelPath = d.Container("encoder").Env["LLark__Encoder__ModelPath"];
        Assert.Equal(modelPath, (string?)seed.Mount("weights")["mountPath"]);
        string imageFolder = Dockerfile.Load("encoder").FinalEnv()["LLark__Encoder__ModelPath"];
        Assert.Equal($"cp -R {imageFolder}/. {modelPath}/", seed.Json["command"]!.AsArray().Select(n => (string)n!).Last());
        Assert.Equal("/opt/llark/models/spectral", imageFolder);
    }

    private static string SpectralManifest => Path.Combine(RepoPaths.Root, "k8s", "overlays", "prod-spectral", "weights", "encoder.sha256");

    private static void AssertPinsExactly(string manifest, string folder)
    {
        var listed = File.ReadAllLines(manifest).Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.Split("  ", 2)).ToDictionary(p => p[1], p => p[0], StringComparer.Ordinal);
        var present = Directory.GetFiles(folder).ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f))), StringComparer.Ordinal);
        Assert.Equal(present.OrderBy(kv => kv.Key, StringComparer.Ordinal), listed.OrderBy(kv => kv.Key, StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Services))]
    public void TheScriptAcceptsTheBundledModelAgainstTheDevManifest(string service)
    {
        ProcessRun.Output output = Verify(Path.Combine(RepoPaths.Root, "models", BundledModels[service]), DevManifest(service));
        Assert.True(output.ExitCode == 0, output.Stderr);
        Assert.Contains("files in", output.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void TheScriptRefusesAChangedAMissingOrAnUnlistedFileAndAnEmptyManifest()
    {
        string manifest = DevManifest("encoder");
        string source = Path.Combine(RepoPaths.Root, "models", BundledModels["encoder"]);
        string work = Directory.CreateTempSubdirectory("llark-weights-").FullName;
        try
        {
            string Copy(string name)
            {
                string folder = Path.Combine(work, name);
                Directory.CreateDirectory(folder);
                foreach (string f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
                return folder;
            }

            // The bundled encoder may be a single file: the same one is changed, then left out.
            string file = Path.GetFileName(Directory.GetFiles(source).Order(StringComparer.Ordinal).Last());
            string changed = Copy("changed");
            byte[] bytes = File.ReadAllBytes(Path.Combine(changed, file));
            bytes[^1] ^= 1;
            File.WriteAllBytes(Path.Combine(changed, file), bytes);
            ProcessRun.Output output = Verify(changed, manifest);
            Assert.NotEqual(0, output.ExitCode);
            Assert.Contains($"{file}: FAILED", output.Stderr, StringComparison.Ordinal);

            string missing = Copy("missing");
            File.Delete(Path.Combine(missing, file));
            Assert.NotEqual(0, Verify(missing, manifest).ExitCode);

            string extra = Copy("extra");
            File.WriteAllText(Path.Combine(extra, "model-00002-of-00002.safetensors"), "stray");
            output = Verify(extra, manifest);
            Assert.NotEqual(0, output.ExitCode);
            Assert.Contains("model-00002-of-00002.safetensors", output.Stderr, StringComparison.Ordinal);

            string onlyComments = Path.Combine(work, "empty.sha256");
            File.WriteAllText(onlyComments, "# nothing pinned yet\n\n");
            output = Verify(Copy("fine"), onlyComments);
            Assert.NotEqual(0, output.ExitCode);
            Assert.Contains("lists no files", output.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void EachModelServiceStartsOnlyAfterItsWeightsAreVerified(string overlay)
    {
        Rendering r = Kustomize.Overlay(overlay);
        foreach (string service in BundledModels.Keys)
        {
            KubeObject d = r.Get("Deployment", service);
            Container main = d.Container(service);
            Container verify = d.InitContainers.Last();
            Assert.Equal("verify-weights", verify.Name);
            string modelPath = main.Env[$"LLark__{WorkloadTests.Section(service)}__ModelPath"];
            Assert.Equal(modelPath, (string?)main.Mount("weights")["mountPath"]);
            Assert.Equal(modelPath, (string?)verify.Mount("weights")["mountPath"]);
            Assert.True((bool?)main.Mount("weights")["readOnly"] == true);
            Assert.True((bool?)verify.Mount("weights")["readOnly"] == true);
            var command = verify.Json["command"]!.AsArray().Select(n => (string)n!).ToList();
            Assert.Equal(modelPath, command[^2]);
            string manifestDir = (string)verify.Mount("weights-manifest")["mountPath"]!;
            Assert.Equal($"{manifestDir}/SHA256SUMS", command[^1]);
            string scripts = (string)verify.Mount("scripts")["mountPath"]!;
            Assert.Equal($"{scripts}/verify-weights.sh", command[^3]);
            // The manifest is this overlay's, the script the one tested above.
            KubeObject manifest = r.Get("ConfigMap", (string)d.Volume("weights-manifest")["configMap"]!["name"]!);
            string expected = File.ReadAllText(Path.Combine(RepoPaths.Root, "k8s", "overlays", overlay, "weights", $"{service}.sha256"));
            Assert.Equal(expected, (string?)manifest.Json["data"]!["SHA256SUMS"]);
            KubeObject script = r.Get("ConfigMap", (string)d.Volume("scripts")["configMap"]!["name"]!);
            Assert.Equal(File.ReadAllText(Script), (string?)script.Json["data"]!["verify-weights.sh"]);
        }
    }

    [Fact]
    public void InProductionTheWeightsAreAReadOnlyVolumeEveryPodCanMount()
    {
        Rendering prod = Kustomize.Overlay("prod-gpu");
        foreach (string service in BundledModels.Keys)
        {
            JsonNode claim = prod.Get("Deployment", service).Volume("weights")["persistentVolumeClaim"]!;
            Assert.True((bool?)claim["readOnly"] == true);
            KubeObject pvc = prod.Get("PersistentVolumeClaim", (string)claim["claimName"]!);
            Assert.Equal(ReadOnlyMany, pvc.Spec["accessModes"]!.AsArray().Select(n => (string)n!));
        }
        // The encoders' disk cache is shared by every encoder pod.
        JsonNode cache = prod.Get("Deployment", "encoder").Volume("cache")["persistentVolumeClaim"]!;
        Assert.Equal(ReadWriteMany, prod.Get("PersistentVolumeClaim", (string)cache["claimName"]!).Spec["accessModes"]!.AsArray().Select(n => (string)n!));
    }
}
