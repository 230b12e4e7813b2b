using LLark.Tests.TestSupport;

namespace LLark.Tests.Deploy;

/// <summary>Every file under k8s/ parses, every kustomization renders, and every rendered object passes the API schemas.</summary>
[Trait("Category", "Kubectl")]
public sealed class ManifestTests
{
    private static readonly string K8s = Path.Combine(RepoPaths.Root, "k8s");

    private static IEnumerable<string> YamlFiles() =>
        Directory.EnumerateFiles(K8s, "*.yaml", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}node_modules{Path.DirectorySeparatorChar}", StringComparison.Ordinal));

    [Fact]
    public void EveryYamlFileParsesAndEveryObjectInItIsNamed()
    {
        List<string> files = [.. YamlFiles()];
        Assert.NotEmpty(files);
        foreach (string file in files)
        {
            string relative = Path.GetRelativePath(RepoPaths.Root, file);
            var documents = KubeYaml.Parse(File.ReadAllText(file));
            Assert.True(documents.Count > 0, $"{relative} holds no document");
            foreach (var doc in documents)
            {
                var o = new KubeObject(doc.AsObject());
                Assert.False(string.IsNullOrEmpty(o.ApiVersion), $"{relative}: a document without apiVersion");
                Assert.False(string.IsNullOrEmpty(o.Kind), $"{relative}: a document without kind");
                if (o.Kind is not ("Kustomization" or "Component")) Assert.False(string.IsNullOrEmpty(o.Name), $"{relative}: {o.Kind} without metadata.name");
            }
        }
    }

    [Fact]
    public void ThereAreTheDevCpuAndTheProductionOverlays()
    {
        Assert.Contains("dev-cpu", Kustomize.Overlays);
        Assert.All(WorkloadTests.Production, overlay => Assert.Contains(overlay, Kustomize.Overlays));
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void TheOverlayRendersEveryServiceIntoItsOwnNamespace(string overlay)
    {
        Rendering r = Kustomize.Overlay(overlay);
        string ns = Assert.Single(r.OfKind("Namespace")).Name;
        foreach (string name in new[] { "language", "encoder", "gateway" })
        {
            r.Get("Deployment", name);
            r.Get("Service", name);
            r.Get("PodDisruptionBudget", name);
            r.Get("HorizontalPodAutoscaler", name);
        }
        r.Get("StatefulSet", "redis");
        r.Get("Service", "redis");
        foreach (KubeObject o in r.Objects.Where(o => o.Kind != "Namespace"))
            Assert.True(o.Namespace == ns, $"{overlay}: {o} is in namespace '{o.Namespace}', not {ns}");
    }

    [Fact]
    public void TheMonitoringKustomizationRenders()
    {
        Rendering r = Kustomize.Render(Path.Combine("k8s", "monitoring"));
        Assert.Equal("monitoring", r.Get("ConfigMap", "prometheus-adapter").Namespace);
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void EveryRenderedObjectMatchesTheKubernetesSchemas(string overlay)
    {
        Rendering r = Kustomize.Overlay(overlay);
        ProcessRun.Output output = SchemaValidator.Run(r.File);
        Assert.True(output.ExitCode == 0, $"{overlay}:\n{output.Stdout}{output.Stderr}");
        Assert.Contains($"{r.Objects.Count} objects, 0 invalid", output.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void TheMonitoringObjectsMatchTheKubernetesSchemas()
    {
        ProcessRun.Output output = SchemaValidator.Run(Kustomize.Render(Path.Combine("k8s", "monitoring")).File);
        Assert.True(output.ExitCode == 0, output.Stdout + output.Stderr);
    }

    [Fact]
    public void TheSchemaValidatorRejectsWrongTypesAndUnknownKinds()
    {
        string file = Path.Combine(Kustomize.RenderFolder, "invalid.yaml");
        File.WriteAllText(file, """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: broken}
            spec:
              replicas: two
              selector: {matchLabels: {a: b}}
              template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i, ports: [{containerPort: http}]}]}}
            ---
            apiVersion: example.com/v1
            kind: Thing
            metadata: {name: unknown}
            """);
        ProcessRun.Output output = SchemaValidator.Run(file);
        Assert.Equal(1, output.ExitCode);
        Assert.Contains("invalid Deployment/broken: ", output.Stdout, StringComparison.Ordinal);
        Assert.Contains("spec/replicas must be integer", output.Stdout, StringComparison.Ordinal);
        Assert.Contains("ports/0/containerPort must be integer", output.Stdout, StringComparison.Ordinal);
        Assert.Contains("invalid Thing/unknown: no schema", output.Stdout, StringComparison.Ordinal);
    }
}

/// <summary>k8s/validate/validate.mjs (kubernetes-models, installed by tools/setup.sh's <c>npm ci</c>) on a file.</summary>
internal static class SchemaValidator
{
    public static ProcessRun.Output Run(string file)
    {
        string folder = Path.Combine(RepoPaths.Root, "k8s", "validate");
        if (!Directory.Exists(Path.Combine(folder, "node_modules", "kubernetes-models")))
            throw new InvalidOperationException("k8s/validate/node_modules is missing: run tools/setup.sh (npm ci --prefix k8s/validate)");
        return ProcessRun.Run("node", [Path.Combine(folder, "validate.mjs"), file], "Node.js runs the schema validator", folder);
    }
}
