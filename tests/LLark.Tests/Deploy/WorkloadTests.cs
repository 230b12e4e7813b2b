using System.Globalization;
using System.Text.Json.Nodes;
using LLark.Language.Service;

namespace LLark.Tests.Deploy;

/// <summary>What must hold in every overlay's output: GPU pools, probes, Services, autoscaling, images, sizes, security.</summary>
[Trait("Category", "Kubectl")]
public sealed class WorkloadTests
{
    /// <summary>The model services: their gRPC service (what readiness asks the health service about) and weights.</summary>
    internal static readonly Dictionary<string, (string GrpcService, double WeightBytes)> ModelServices = new(StringComparer.Ordinal)
    {
        // The language service README's memory plan: Llama-2-7B in bf16.
        ["language"] = (LanguageServiceHost.GrpcServiceName, 13.48e9),
        // engines/LLark.Encoder.Engine/README.md: the 36-block Jukebox encoder, bf16 matrices. The encoder service's
        // name is the spec's (llark.encoder.v1.EncoderService); its host is not referenced by the tests yet.
        ["encoder"] = ("llark.encoder.v1.EncoderService", 5.27e9),
    };

    private const string PoolLabel = "llark.services/pool";
    private const string Gpu = "nvidia.com/gpu";
    private static readonly string[] DropAll = ["ALL"];

    private static Rendering Prod => Kustomize.Overlay("prod-gpu");

    /// <summary>The production overlays: prod-gpu, and prod-spectral (prod-gpu with the spectral encoder on the CPU pool).</summary>
    internal static readonly string[] Production = ["prod-gpu", "prod-spectral"];

    public static TheoryData<string> ProductionOverlays => [.. Production];

    [Fact]
    public void InProductionEachModelServiceAsksForOneGpuOnItsOwnPool()
    {
        var pools = new HashSet<string>(StringComparer.Ordinal);
        foreach (string name in ModelServices.Keys)
        {
            KubeObject d = Prod.Get("Deployment", name);
            string pool = (string?)d.PodSpec["nodeSelector"]?[PoolLabel] ?? "";
            Assert.Equal(name, pool);
            Assert.True(pools.Add(pool), $"{name} shares pool {pool}");
            Assert.Contains(KubeObject.Items(d.PodSpec["tolerations"]), t => (string?)t["key"] == PoolLabel
                && (string?)t["operator"] == "Equal" && (string?)t["value"] == pool && (string?)t["effect"] == "NoSchedule");
            Container main = d.Container(name);
            Assert.Equal("1", main.Limit(Gpu));
            Assert.Equal("cuda", main.Env[$"LLark__{Section(name)}__Device"]);
            Assert.Equal("bf16", main.Env[$"LLark__{Section(name)}__DType"]);
            Assert.EndsWith("-cuda", main.Image, StringComparison.Ordinal);
            Assert.All(d.InitContainers, c => Assert.Null(c.Limit(Gpu)));
        }
    }

    [Theory]
    [MemberData(nameof(ProductionOverlays))]
    public void InProductionTheGatewayAndRedisStayOnCpuNodes(string overlay)
    {
        foreach (KubeObject w in Kustomize.Overlay(overlay).Workloads.Where(w => !ModelServices.ContainsKey(w.Name))) AssertOnTheCpuPool(w);
    }

    [Fact]
    public void TheSpectralOverlayRunsTheEncoderOnTheCpuPoolAndNeedsAGpuForTheLanguageServiceOnly()
    {
        Rendering spectral = Kustomize.Overlay("prod-spectral");
        KubeObject encoder = spectral.Get("Deployment", "encoder");
        AssertOnTheCpuPool(encoder);
        Container main = encoder.Container("encoder");
        Assert.Equal("cpu", main.Env["LLark__Encoder__Device"]);
        Assert.Equal("fp32", main.Env["LLark__Encoder__DType"]);
        Assert.EndsWith("-cpu", main.Image, StringComparison.Ordinal);
        Assert.All(spectral.Workloads.Where(w => w.Name != "language"), w => Assert.All(w.Containers.Concat(w.InitContainers), c => Assert.Null(c.Limit(Gpu) ?? c.Request(Gpu))));
        // The language service as in prod-gpu: one GPU on its own pool.
        KubeObject language = spectral.Get("Deployment", "language");
        Assert.Equal("language", (string?)language.PodSpec["nodeSelector"]?[PoolLabel]);
        Assert.Contains(KubeObject.Items(language.PodSpec["tolerations"]), t => (string?)t["key"] == PoolLabel && (string?)t["value"] == "language");
        Assert.Equal("1", language.Container("language").Limit(Gpu));
        Assert.Equal(Prod.Get("Deployment", "language").Container("language").Env, language.Container("language").Env);
    }

    private static void AssertOnTheCpuPool(KubeObject w)
    {
        Assert.Equal("cpu", (string?)w.PodSpec["nodeSelector"]?[PoolLabel]);
        Assert.DoesNotContain(KubeObject.Items(w.PodSpec["tolerations"]), t => (string?)t["key"] is PoolLabel or Gpu);
        Assert.All(w.Containers.Concat(w.InitContainers), c => Assert.Null(c.Limit(Gpu) ?? c.Request(Gpu)));
    }

    [Fact]
    public void TheDevOverlayAsksForNoGpuAndRunsTheModelsOnTheCpu()
    {
        Rendering dev = Kustomize.Overlay("dev-cpu");
        Assert.DoesNotContain(Gpu, dev.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(PoolLabel, dev.Text, StringComparison.Ordinal);
        foreach (string name in ModelServices.Keys)
        {
            Container main = dev.Get("Deployment", name).Container(name);
            Assert.Equal("cpu", main.Env[$"LLark__{Section(name)}__Device"]);
            Assert.Equal("fp32", main.Env[$"LLark__{Section(name)}__DType"]);
            Assert.EndsWith("-cpu", main.Image, StringComparison.Ordinal);
        }
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void ProbesAskTheGrpcHealthServiceOnThePortTheServiceListensOn(string overlay)
    {
        foreach (KubeObject d in Kustomize.Overlay(overlay).OfKind("Deployment"))
        {
            Container main = d.Container(d.Name);
            int grpc = main.Ports["grpc"];
            Assert.Equal(grpc.ToString(CultureInfo.InvariantCulture), main.Env["LLark__Listen__GrpcPort"]);
            foreach (string kind in new[] { "startupProbe", "readinessProbe", "livenessProbe" })
            {
                JsonObject probe = main.Probe(kind) ?? throw new Xunit.Sdk.XunitException($"{overlay}: {d} has no {kind}");
                Assert.True((int?)probe["grpc"]?["port"] == grpc, $"{overlay}: {d} {kind} is not a gRPC probe on {grpc}");
            }
            string readiness = (string?)main.Probe("readinessProbe")!["grpc"]!["service"] ?? "";
            string expected = ModelServices.TryGetValue(d.Name, out var model) ? model.GrpcService : "";
            Assert.Equal(expected, readiness);
        }
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void StartupProbesLeaveTimeToReadTheWeightsAt25MBPerSecond(string overlay)
    {
        foreach ((string name, (_, double bytes)) in ModelServices)
        {
            JsonObject probe = Kustomize.Overlay(overlay).Get("Deployment", name).Container(name).Probe("startupProbe")!;
            double budget = (int)probe["periodSeconds"]! * (int)probe["failureThreshold"]!;
            Assert.True(budget >= bytes / 25e6, $"{overlay}: {name} gets {budget} s to start; {bytes / 1e9:F2} GB at 25 MB/s takes {bytes / 25e6:F0} s");
        }
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void EachServiceSelectsOneWorkloadAndTargetsPortsItExposes(string overlay)
    {
        Rendering r = Kustomize.Overlay(overlay);
        foreach (KubeObject service in r.OfKind("Service"))
        {
            var selector = KubeObject.Labels(service.Spec["selector"]);
            KubeObject workload = Assert.Single(r.Workloads, w => selector.All(kv => w.PodLabels.GetValueOrDefault(kv.Key) == kv.Value));
            var ports = workload.Containers.SelectMany(c => c.Ports).ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
            foreach (JsonObject port in KubeObject.Items(service.Spec["ports"]))
            {
                string target = port["targetPort"]!.ToString();
                Assert.True(ports.ContainsKey(target) || ports.ContainsValue(int.Parse(target, CultureInfo.InvariantCulture)),
                    $"{overlay}: {service} targets {target}, which {workload} does not expose");
                Assert.Equal((int)port["port"]!, ports.GetValueOrDefault(target, (int)port["port"]!));
            }
        }
        // One address per pod, for the gateway's per-pod destinations.
        foreach (string name in ModelServices.Keys) Assert.Equal("None", (string?)r.Get("Service", name).Spec["clusterIP"]);
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void AddressesInTheSettingsNameServicesAndTheirPorts(string overlay)
    {
        Rendering r = Kustomize.Overlay(overlay);
        var gateway = r.Get("Deployment", "gateway").Container("gateway").Env;
        AssertServiceAddress(r, gateway["ReverseProxy__Clusters__language__Destinations__pods__Address"], "language", "grpc");
        AssertServiceAddress(r, gateway["ReverseProxy__Clusters__encoder__Destinations__pods__Address"], "encoder", "grpc");
        AssertServiceAddress(r, r.Get("Deployment", "language").Container("language").Env["LLark__Language__EncoderAddress"], "encoder", "grpc");
        AssertServiceAddress(r, "tcp://" + r.Get("Deployment", "encoder").Container("encoder").Env["LLark__Encoder__Cache__Redis"], "redis", "redis");
    }

    private static void AssertServiceAddress(Rendering r, string address, string service, string portName)
    {
        var uri = new Uri(address);
        Assert.Equal(service, uri.Host);
        JsonObject port = Assert.Single(KubeObject.Items(r.Get("Service", service).Spec["ports"]), p => (string?)p["name"] == portName);
        Assert.Equal((int)port["port"]!, uri.Port);
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void ModelServicesScaleOnTheirQueueDepthPerPodNeverOnCpu(string overlay)
    {
        Rendering r = Kustomize.Overlay(overlay);
        var adapterRules = PrometheusAdapterRules();
        foreach (KubeObject hpa in r.OfKind("HorizontalPodAutoscaler"))
        {
            var target = hpa.Spec["scaleTargetRef"]!;
            r.Get((string)target["kind"]!, (string)target["name"]!);
            if (!ModelServices.ContainsKey(hpa.Name)) continue;
            var metrics = KubeObject.Items(hpa.Spec["metrics"]).ToList();
            Assert.All(metrics, m => Assert.Equal("Pods", (string?)m["type"]));
            var names = metrics.Select(m => (string)m["pods"]!["metric"]!["name"]!).ToList();
            Assert.Contains($"llark_{hpa.Name}_queue_depth", names);
            Assert.All(names, n => Assert.Contains(n, adapterRules));
            Assert.True((int)hpa.Spec["maxReplicas"]! >= (int)hpa.Spec["minReplicas"]!);
        }
        // Scaling on slots in use must trigger before every slot is taken.
        KubeObject language = r.Get("HorizontalPodAutoscaler", "language");
        JsonObject active = KubeObject.Items(language.Spec["metrics"]).Single(m => (string?)m["pods"]!["metric"]!["name"] == "llark_language_active_sequences");
        int slots = int.Parse(r.Get("Deployment", "language").Container("language").Env["LLark__Language__MaxBatchSize"], CultureInfo.InvariantCulture);
        Assert.True(Quantity.Parse((string)active["pods"]!["target"]!["averageValue"]!) < slots);
    }

    /// <summary>The metric names the prometheus-adapter ConfigMap's rules serve (each rule's seriesQuery names one).</summary>
    private static HashSet<string> PrometheusAdapterRules()
    {
        KubeObject config = Kustomize.Render(Path.Combine("k8s", "monitoring")).Get("ConfigMap", "prometheus-adapter");
        JsonNode rules = Assert.Single(KubeYaml.Parse((string)config.Json["data"]!["config.yaml"]!))["rules"]!;
        return [.. rules.AsArray().Select(rule => ((string)rule!["seriesQuery"]!).Split('{')[0])];
    }

    [Theory]
    [MemberData(nameof(ProductionOverlays))]
    public void InProductionEveryServiceKeepsTwoPodsAtLeast(string overlay)
    {
        foreach (KubeObject hpa in Kustomize.Overlay(overlay).OfKind("HorizontalPodAutoscaler")) Assert.True((int)hpa.Spec["minReplicas"]! >= 2, $"{overlay}: {hpa}");
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void EveryDeploymentHasADisruptionBudgetThatLetsANodeDrain(string overlay)
    {
        Rendering r = Kustomize.Overlay(overlay);
        foreach (KubeObject d in r.OfKind("Deployment"))
        {
            KubeObject pdb = Assert.Single(r.OfKind("PodDisruptionBudget"), p =>
                KubeObject.Labels(p.Spec["selector"]?["matchLabels"]).All(kv => d.PodLabels.GetValueOrDefault(kv.Key) == kv.Value));
            Assert.Equal(1, (int?)pdb.Spec["maxUnavailable"]);
        }
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void EachServiceRunsItsOwnImageInEveryContainerOfItsPods(string overlay)
    {
        foreach (KubeObject d in Kustomize.Overlay(overlay).OfKind("Deployment"))
        {
            var images = d.Containers.Concat(d.InitContainers).Select(c => c.Image).Distinct(StringComparer.Ordinal).ToList();
            string image = Assert.Single(images);
            string repository = image[..image.LastIndexOf(':')];
            Assert.True(repository == $"llark/{d.Name}" || repository.EndsWith($"/llark/{d.Name}", StringComparison.Ordinal), $"{overlay}: {d} runs {image}");
            Assert.Contains(':', image);
        }
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void EveryPodRunsAsItsImageUserWithoutPrivilegeOnAReadOnlyRoot(string overlay)
    {
        foreach (KubeObject w in Kustomize.Overlay(overlay).Workloads)
        {
            Assert.True((bool?)w.PodSpec["securityContext"]?["runAsNonRoot"] == true, $"{overlay}: {w}");
            Assert.Equal("RuntimeDefault", (string?)w.PodSpec["securityContext"]?["seccompProfile"]?["type"]);
            // The images' user (DockerfileTests checks USER 1654); Redis's image runs as 999.
            Assert.Equal(w.Name == "redis" ? 999 : DockerfileTests.ImageUser, (int?)w.PodSpec["securityContext"]?["runAsUser"]);
            Assert.False((bool?)w.PodSpec["automountServiceAccountToken"] ?? true, $"{overlay}: {w} mounts an API token it never uses");
            foreach (Container c in w.Containers.Concat(w.InitContainers))
            {
                JsonNode? security = c.Json["securityContext"];
                Assert.True((bool?)security?["allowPrivilegeEscalation"] == false, $"{overlay}: {w}/{c}");
                Assert.True((bool?)security?["readOnlyRootFilesystem"] == true, $"{overlay}: {w}/{c}");
                Assert.Equal(DropAll, security?["capabilities"]?["drop"]?.AsArray().Select(n => (string)n!).ToArray());
            }
        }
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void EveryContainerRequestsCpuAndMemoryAndIsLimitedInMemory(string overlay)
    {
        foreach (KubeObject w in Kustomize.Overlay(overlay).Workloads)
        {
            foreach (Container c in w.Containers.Concat(w.InitContainers))
            {
                Assert.True(c.Request("cpu") is not null, $"{overlay}: {w}/{c} requests no cpu");
                string request = c.Request("memory") ?? throw new Xunit.Sdk.XunitException($"{overlay}: {w}/{c} requests no memory");
                string limit = c.Limit("memory") ?? throw new Xunit.Sdk.XunitException($"{overlay}: {w}/{c} has no memory limit");
                Assert.True(Quantity.Parse(limit) >= Quantity.Parse(request), $"{overlay}: {w}/{c}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void ModelPodsHaveAMemoryBackedSharedMemory(string overlay)
    {
        foreach (string name in ModelServices.Keys)
        {
            KubeObject d = Kustomize.Overlay(overlay).Get("Deployment", name);
            string volume = (string)d.Container(name).Mounts.Single(m => (string?)m["mountPath"] == "/dev/shm")["name"]!;
            JsonNode emptyDir = d.Volume(volume)["emptyDir"]!;
            Assert.Equal("Memory", (string?)emptyDir["medium"]);
            Assert.NotNull(emptyDir["sizeLimit"]);
        }
    }

    [Fact]
    public void InProductionTheLanguageBatchFitsAnEightyGigabyteGpu()
    {
        // The KV cache is allocated whole at start: slots x positions x 512 KiB (2 x 32 layers x 4096 x bf16).
        var env = Prod.Get("Deployment", "language").Container("language").Env;
        double slots = double.Parse(env["LLark__Language__MaxBatchSize"], CultureInfo.InvariantCulture);
        double positions = double.Parse(env["LLark__Language__ContextLength"], CultureInfo.InvariantCulture);
        double kv = slots * positions * 512 * 1024;
        // The prefix cache holds keys and values in the same GPU memory, up to its budget.
        double prefixCache = double.Parse(env["LLark__Language__PrefixCacheBytes"], CultureInfo.InvariantCulture);
        double total = ModelServices["language"].WeightBytes + kv + prefixCache + 4e9;
        Assert.True(total <= 80e9 * 0.9, $"{total / 1e9:F1} GB planned on an 80 GB GPU");
        Assert.True(positions >= 62 + 632 + 512, "LLark's prompt (text, 632 audio frames) and a 512-token answer must fit");
        Assert.True(prefixCache >= 10.0 * 690 * 512 * 1024, "the prefix cache should hold at least ten clips' prompts (690 positions each)");
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void LanguagePodsKeepAPrefixCacheWithinTheirMemory(string overlay)
    {
        Container language = Kustomize.Overlay(overlay).Get("Deployment", "language").Container("language");
        double budget = double.Parse(language.Env["LLark__Language__PrefixCacheBytes"], CultureInfo.InvariantCulture);
        Assert.True(budget > 0, $"{overlay}: the prefix cache is off, so the gateway's clip affinity saves nothing");
        // On the CPU the cache is host memory, beside the weights and the batch's own cache.
        if (language.Env["LLark__Language__Device"] == "cpu")
            Assert.True(budget <= 0.25 * Quantity.Parse(language.Limit("memory")!), $"{overlay}: {budget / 1e6:F0} MB of a {language.Limit("memory")} limit");
    }

    [Fact]
    public void InProductionTheEncoderHostMemoryHoldsTheStagedWeightsTheCacheAndSharedMemory()
    {
        // The encoder loads its weights on the CPU and then moves them to the GPU (JukeboxEncoderLoader).
        KubeObject d = Prod.Get("Deployment", "encoder");
        Container main = d.Container("encoder");
        double cache = double.Parse(main.Env["LLark__Encoder__Cache__MemoryBytes"], CultureInfo.InvariantCulture);
        double shm = Quantity.Parse((string)d.Volume("dshm")["emptyDir"]!["sizeLimit"]!);
        double needed = ModelServices["encoder"].WeightBytes + cache + shm + 2e9;
        Assert.True(Quantity.Parse(main.Limit("memory")!) >= needed, $"memory limit {main.Limit("memory")} < {needed / 1e9:F1} GB");
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void RedisEvictsBeforeItsLimit(string overlay)
    {
        Container redis = Kustomize.Overlay(overlay).Get("StatefulSet", "redis").Container("redis");
        double max = Quantity.ParseRedis(redis.Env["REDIS_MAXMEMORY"]);
        Assert.True(max <= 0.9 * Quantity.Parse(redis.Limit("memory")!), $"{overlay}: maxmemory {redis.Env["REDIS_MAXMEMORY"]} vs limit {redis.Limit("memory")}");
        Assert.Contains("allkeys-lru", redis.Json["args"]!.AsArray().Select(a => (string?)a));
    }

    [Theory]
    [MemberData(nameof(Kustomize.OverlayData), MemberType = typeof(Kustomize))]
    public void EveryConfigMapSecretAndClaimAPodUsesIsRendered(string overlay)
    {
        Rendering r = Kustomize.Overlay(overlay);
        foreach (KubeObject w in r.Workloads)
        {
            foreach (JsonObject v in KubeObject.Items(w.PodSpec["volumes"]))
            {
                if (v["configMap"]?["name"] is { } cm) r.Get("ConfigMap", (string)cm!);
                if (v["persistentVolumeClaim"]?["claimName"] is { } pvc) r.Get("PersistentVolumeClaim", (string)pvc!);
                if (v["secret"]?["secretName"] is { } secret)
                {
                    // Production's API keys and internal token are made outside git (k8s/README.md); everything else comes with the overlay.
                    if (Production.Contains(overlay) && (string)secret! is "gateway-api-keys" or "llark-internal-token") continue;
                    r.Get("Secret", (string)secret!);
                }
            }
        }
    }

    internal static string Section(string service) => service switch
    {
        "language" => "Language",
        "encoder" => "Encoder",
        "gateway" => "Gateway",
        _ => throw new ArgumentOutOfRangeException(nameof(service), service, null),
    };
}
