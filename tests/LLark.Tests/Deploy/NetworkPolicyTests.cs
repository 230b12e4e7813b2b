using System.Text.Json.Nodes;

namespace LLark.Tests.Deploy;

/// <summary>
/// Who may reach whom, worked out from the rendered NetworkPolicies as the API defines them (ingress only: a pod
/// selected by no policy takes everything; one selected by any takes what some rule of one of them allows).
/// </summary>
[Trait("Category", "Kubectl")]
public sealed class NetworkPolicyTests
{
    private sealed record Peer(string Name, IReadOnlyDictionary<string, string> Labels, string Namespace)
    {
        public IReadOnlyDictionary<string, string> NamespaceLabels { get; } =
            new Dictionary<string, string>(StringComparer.Ordinal) { ["kubernetes.io/metadata.name"] = Namespace };
    }

    private static Dictionary<string, string> App(string name) => new(StringComparer.Ordinal) { ["app.kubernetes.io/name"] = name };

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void OnlyTheGatewayReachesTheServicesAndOnlyTheEncoderReachesRedis(string overlay)
    {
        Rendering r = Kustomize.Overlay(overlay);
        string ns = Assert.Single(r.OfKind("Namespace")).Name;
        List<Peer> peers =
        [
            .. r.Workloads.Select(w => new Peer(w.Name, w.PodLabels, ns)),
            new("another pod here", App("debug"), ns),
            new("a pod elsewhere", App("gateway"), "default"),
            new("monitoring", App("prometheus"), "monitoring"),
        ];
        var expected = new Dictionary<(string Target, int Port), string[]>
        {
            [("gateway", 5000)] = [.. peers.Select(p => p.Name)],
            [("gateway", 8080)] = [.. peers.Select(p => p.Name)],
            [("language", 5001)] = ["gateway"],
            [("encoder", 5002)] = ["gateway", "language"],
            [("redis", 6379)] = ["encoder"],
            [("language", 9464)] = ["monitoring"],
            [("encoder", 9464)] = ["monitoring"],
        };
        var policies = r.OfKind("NetworkPolicy").ToList();
        Assert.Contains(policies, p => p.Spec["podSelector"]!.AsObject().Count == 0 && KubeObject.Items(p.Spec["ingress"]).Any() == false);
        foreach (((string target, int port), string[] allowed) in expected)
        {
            KubeObject workload = r.Workload(target);
            Assert.Contains(port, workload.Containers.SelectMany(c => c.Ports.Values));
            var reached = peers.Where(p => Allows(policies, ns, workload.PodLabels, p, port)).Select(p => p.Name).Order(StringComparer.Ordinal);
            Assert.True(reached.SequenceEqual(allowed.Order(StringComparer.Ordinal)),
                $"{overlay}: {target}:{port} is reached by [{string.Join(", ", reached)}], expected [{string.Join(", ", allowed)}]");
        }
    }

    private static bool Allows(List<KubeObject> policies, string ns, IReadOnlyDictionary<string, string> target, Peer from, int port)
    {
        var selecting = policies.Where(p => Selects(p.Spec["podSelector"], target) && IsIngress(p)).ToList();
        if (selecting.Count == 0) return true;
        return selecting.Any(p => KubeObject.Items(p.Spec["ingress"]).Any(rule => FromMatches(rule["from"], ns, from) && PortMatches(rule["ports"], port)));
    }

    private static bool IsIngress(KubeObject policy) =>
        policy.Spec["policyTypes"] is not JsonArray types || types.Any(t => (string?)t == "Ingress");

    private static bool FromMatches(JsonNode? from, string ns, Peer peer)
    {
        if (from is not JsonArray list || list.Count == 0) return true;
        return list.Any(entry =>
        {
            JsonNode? pods = entry!["podSelector"], namespaces = entry["namespaceSelector"];
            if (pods is null && namespaces is null) return false; // an ipBlock: no pod of ours
            // A podSelector alone means pods of the policy's own namespace.
            bool namespaceOk = namespaces is null ? peer.Namespace == ns : Selects(namespaces, peer.NamespaceLabels);
            return namespaceOk && (pods is null || Selects(pods, peer.Labels));
        });
    }

    private static bool PortMatches(JsonNode? ports, int port) =>
        ports is not JsonArray list || list.Count == 0 || list.Any(p => (int?)p!["port"] == port && ((string?)p["protocol"] ?? "TCP") == "TCP");

    private static bool Selects(JsonNode? selector, IReadOnlyDictionary<string, string> labels)
    {
        if (selector is null) return false;
        bool labelsMatch = KubeObject.Labels(selector["matchLabels"]).All(kv => labels.GetValueOrDefault(kv.Key) == kv.Value);
        bool expressionsMatch = KubeObject.Items(selector["matchExpressions"]).All(e =>
        {
            string key = (string)e["key"]!;
            var values = e["values"]?.AsArray().Select(v => (string)v!).ToList() ?? [];
            bool has = labels.TryGetValue(key, out string? value);
            return (string?)e["operator"] switch
            {
                "In" => has && values.Contains(value!),
                "NotIn" => !has || !values.Contains(value!),
                "Exists" => has,
                "DoesNotExist" => !has,
                _ => false,
            };
        });
        return labelsMatch && expressionsMatch;
    }
}
