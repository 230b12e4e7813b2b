using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Deploy;

/// <summary>
/// Renders kustomizations under k8s/ with <c>kubectl kustomize</c> (kustomize v5 is built into kubectl; the dotnet
/// machine image ships kubectl 1.32), once per folder for the whole test run.
/// </summary>
internal static class Kustomize
{
    private static readonly ConcurrentDictionary<string, Lazy<Rendering>> Renderings = new(StringComparer.Ordinal);

    /// <summary>The overlays, as folder names under k8s/overlays.</summary>
    public static IReadOnlyList<string> Overlays { get; } =
        [.. Directory.GetDirectories(Path.Combine(RepoPaths.Root, "k8s", "overlays")).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal)];

    public static TheoryData<string> OverlayData => [.. Overlays];

    /// <summary>Where renderings are written for other tools to read: beside the test binaries, replaced on every run.</summary>
    public static string RenderFolder { get; } = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "k8s-rendered")).FullName;

    public static Rendering Overlay(string name) => Render(Path.Combine("k8s", "overlays", name));

    /// <summary>A kustomization folder relative to the repository root, rendered.</summary>
    public static Rendering Render(string folder) =>
        Renderings.GetOrAdd(folder, f => new Lazy<Rendering>(() => RenderNow(f))).Value;

    private static Rendering RenderNow(string folder)
    {
        ProcessRun.Output output = ProcessRun.Run("kubectl", ["kustomize", Path.Combine(RepoPaths.Root, folder)],
            "kubectl (with kustomize) is needed to render k8s/; it comes with the machine image");
        if (output.ExitCode != 0) throw new InvalidOperationException($"kubectl kustomize {folder} failed ({output.ExitCode}): {output.Stderr}");
        string file = Path.Combine(RenderFolder, folder.Replace('/', '-').Replace('\\', '-') + ".yaml");
        File.WriteAllText(file, output.Stdout);
        return new Rendering(folder, output.Stdout, file, [.. KubeYaml.Parse(output.Stdout).Select(n => new KubeObject(n.AsObject()))]);
    }
}

/// <summary>One kustomization's output: the text (also in <see cref="File"/>, for other tools) and its objects.</summary>
internal sealed record Rendering(string Folder, string Text, string File, IReadOnlyList<KubeObject> Objects)
{
    public IEnumerable<KubeObject> OfKind(string kind) => Objects.Where(o => o.Kind == kind);

    public KubeObject Get(string kind, string name) =>
        Objects.SingleOrDefault(o => o.Kind == kind && o.Name == name) ?? throw new KeyNotFoundException($"{Folder} renders no {kind}/{name}");

    /// <summary>Deployments and StatefulSets: whatever runs pods.</summary>
    public IEnumerable<KubeObject> Workloads => Objects.Where(o => o.Kind is "Deployment" or "StatefulSet");

    /// <summary>The workload named <paramref name="name"/>, of whichever kind.</summary>
    public KubeObject Workload(string name) =>
        Workloads.SingleOrDefault(o => o.Name == name) ?? throw new KeyNotFoundException($"{Folder} renders no workload {name}");
}

/// <summary>A Kubernetes object with the few accessors the deployment tests need.</summary>
internal sealed class KubeObject(JsonObject json)
{
    public JsonObject Json { get; } = json;

    public string ApiVersion => (string?)Json["apiVersion"] ?? "";

    public string Kind => (string?)Json["kind"] ?? "";

    public string Name => (string?)Json["metadata"]?["name"] ?? "";

    public string? Namespace => (string?)Json["metadata"]?["namespace"];

    public JsonObject Spec => Json["spec"]?.AsObject() ?? throw new InvalidOperationException($"{this} has no spec");

    public JsonObject PodSpec => Spec["template"]?["spec"]?.AsObject() ?? throw new InvalidOperationException($"{this} has no pod template");

    public IReadOnlyDictionary<string, string> PodLabels => Labels(Spec["template"]?["metadata"]?["labels"]);

    public IEnumerable<Container> Containers => Items(PodSpec["containers"]).Select(c => new Container(c));

    public IEnumerable<Container> InitContainers => Items(PodSpec["initContainers"]).Select(c => new Container(c));

    public Container Container(string name) =>
        Containers.SingleOrDefault(c => c.Name == name) ?? throw new KeyNotFoundException($"{this} has no container {name}");

    /// <summary>The pod's volume of that name.</summary>
    public JsonObject Volume(string name) => Items(PodSpec["volumes"]).SingleOrDefault(v => (string?)v["name"] == name)
        ?? throw new KeyNotFoundException($"{this} has no volume {name}");

    public override string ToString() => $"{Kind}/{Name}";

    public static IEnumerable<JsonObject> Items(JsonNode? array) => array?.AsArray().Select(n => n!.AsObject()) ?? [];

    public static IReadOnlyDictionary<string, string> Labels(JsonNode? map) =>
        map?.AsObject().ToDictionary(kv => kv.Key, kv => (string?)kv.Value ?? "", StringComparer.Ordinal) ?? [];
}

internal sealed class Container(JsonObject json)
{
    public JsonObject Json { get; } = json;

    public string Name => (string?)Json["name"] ?? "";

    public string Image => (string?)Json["image"] ?? "";

    /// <summary>Literal env values by name (valueFrom entries have none and are left out).</summary>
    public IReadOnlyDictionary<string, string> Env =>
        KubeObject.Items(Json["env"]).Where(e => e["value"] is not null)
            .ToDictionary(e => (string)e["name"]!, e => (string)e["value"]!, StringComparer.Ordinal);

    public IEnumerable<string> EnvNames => KubeObject.Items(Json["env"]).Select(e => (string)e["name"]!);

    /// <summary>Container ports by name.</summary>
    public IReadOnlyDictionary<string, int> Ports =>
        KubeObject.Items(Json["ports"]).ToDictionary(p => (string?)p["name"] ?? "", p => (int)p["containerPort"]!, StringComparer.Ordinal);

    public JsonObject? Probe(string kind) => Json[kind]?.AsObject();

    public string? Request(string resource) => Json["resources"]?["requests"]?[resource]?.ToString();

    public string? Limit(string resource) => Json["resources"]?["limits"]?[resource]?.ToString();

    public IEnumerable<JsonObject> Mounts => KubeObject.Items(Json["volumeMounts"]);

    public JsonObject Mount(string volume) => Mounts.SingleOrDefault(m => (string?)m["name"] == volume)
        ?? throw new KeyNotFoundException($"container {Name} does not mount {volume}");

    public override string ToString() => Name;
}

/// <summary>Runs a tool to completion and keeps what it printed.</summary>
internal static class ProcessRun
{
    public sealed record Output(int ExitCode, string Stdout, string Stderr);

    public static Output Run(string tool, IEnumerable<string> args, string whatFor, string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory ?? RepoPaths.Root,
        };
        foreach (string a in args) start.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"{tool} could not be started ({e.Message}): {whatFor}", e);
        }
        using (process)
        {
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromMinutes(1)))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish in a minute");
            }
            return new Output(process.ExitCode, stdout.Result, stderr.Result);
        }
    }
}
