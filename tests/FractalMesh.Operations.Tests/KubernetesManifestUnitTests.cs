using System.Collections.Concurrent;
using System.Globalization;
using FractalMesh.LevelService.Extensions;
using FractalMesh.Model.Config;
using YamlDotNet.RepresentationModel;
using Xunit;

namespace FractalMesh.Operations.Tests;

/// <summary>
/// deploy/k8s parses and agrees with the code. The base: one level service per level of the demo model (level0 → level1 →
/// pixelhead), each a Deployment with grpc.health.v1 probes on the services the level service registers, a headless
/// Service, an HPA on the level's queue depth (not CPU) and a PDB; a gateway without weights calling level0; Redis;
/// configuration keys that exist, ports that match, names that resolve. Rendered by kustomize: the gpu overlay gives every
/// level pod one GPU and the gateway none; the in256 overlay runs the four levels of a 256×256 preset the same way; the tls
/// overlay puts every level channel and the gateway's ports on TLS with certificates from Secrets.
/// </summary>
public sealed class KubernetesManifestUnitTests
{
    const string Base = "deploy/k8s/base";
    const string Gpu = "deploy/k8s/overlays/gpu";
    const string In256 = "deploy/k8s/overlays/in256";
    const string Tls = "deploy/k8s/overlays/tls";

    /// <summary>The level service's queue-depth gauge as Prometheus names it (LevelServiceTelemetryTests scrapes it from a real process).</summary>
    public const string QueueDepthMetric = "fractalmesh_level_queue_rows";

    /// <summary>One object of a manifest: its kind, name and where it came from.</summary>
    sealed record K8sObject(string File, string Kind, string Name, YamlMappingNode Node);

    /// <summary>A set of objects (a folder's files, or what kustomize renders from it) and what the tests ask of them.</summary>
    sealed class Manifest(string source, IReadOnlyList<K8sObject> objects)
    {
        public string Source { get; } = source;
        public IReadOnlyList<K8sObject> Objects { get; } = objects;

        public IEnumerable<K8sObject> OfKind(string kind) => Objects.Where(o => o.Kind == kind);

        public K8sObject? Find(string kind, string name) => Objects.SingleOrDefault(o => o.Kind == kind && o.Name == name);

        /// <summary>
        /// The environment a container gets: its ConfigMaps and Secrets (envFrom, a later one overriding; a Secret's keys
        /// as deploy/make-secrets.sh writes them, since the Secrets are made from its files, not kept here) and its own env entries.
        /// </summary>
        public Dictionary<string, string> EnvironmentOf(YamlNode container)
        {
            var env = new Dictionary<string, string>();
            foreach (var source in container.Items("envFrom"))
            {
                if (source.Text("secretRef", "name") is { } secret)
                {
                    if (!GeneratedSecrets.KubernetesSecretFiles.TryGetValue(secret, out var file))
                        throw new Xunit.Sdk.XunitException($"{Source}: envFrom names a Secret '{secret}' that {GeneratedSecrets.Script} does not make");
                    foreach (var (k, v) in GeneratedSecrets.Read(file)) env[k] = v;
                    continue;
                }
                var name = source.Text("configMapRef", "name")!;
                var map = Find("ConfigMap", name) ?? throw new Xunit.Sdk.XunitException($"{Source}: envFrom names no ConfigMap '{name}'");
                foreach (var (k, v) in map.Node.Strings("data")) env[k] = v;
            }
            foreach (var entry in container.Items("env")) env[entry.Text("name")!] = entry.Text("value") ?? "";
            return env;
        }

        /// <summary>The environment over the image's ENV: what the program reads.</summary>
        public Dictionary<string, string> EffectiveEnvironmentOf(YamlNode container, ProgramSpec program)
        {
            var env = new Dictionary<string, string>(program.Dockerfile.Environment);
            foreach (var (k, v) in EnvironmentOf(container)) env[k] = v;
            return env;
        }

        public IEnumerable<K8sObject> LevelDeployments => OfKind("Deployment").Where(d => MainContainer(d).Program == ProgramSpec.LevelService);

        public K8sObject Gateway => OfKind("Deployment").Single(d => MainContainer(d).Program == ProgramSpec.Gateway);

        public int GrpcPortOf(K8sObject levelDeployment) =>
            Ports.LevelService(EnvironmentOf(MainContainer(levelDeployment).Container), ProgramSpec.LevelService.Dockerfile);

        public List<LevelServer> LevelServers => LevelDeployments
            .Select(d => new LevelServer(d.Name, EffectiveEnvironmentOf(MainContainer(d).Container, ProgramSpec.LevelService), GrpcPortOf(d)))
            .ToList();

        /// <summary>The level service that a call to host:port reaches: the Service of that name, its port, the pods it selects.</summary>
        public LevelServer? ServerAt(string host, int port)
        {
            var service = Find("Service", host);
            if (service is null) return null;
            var deployments = LevelDeployments.Where(d => Selects(service.Node.Strings("spec", "selector"), PodLabels(d))).ToList();
            if (deployments.Count != 1) return null;
            var container = MainContainer(deployments[0]).Container;
            bool reaches = service.Node.Items("spec", "ports").Any(p => int.Parse(p.Text("port")!) == port
                && Resolve(container, p.Text("targetPort") ?? p.Text("port")!) == GrpcPortOf(deployments[0]));
            return reaches ? LevelServers.Single(s => s.Name == deployments[0].Name) : null;
        }
    }

    static Manifest FromFiles(string folder)
    {
        var kustomization = Repository.LoadYaml($"{folder}/kustomization.yaml").Single();
        return new Manifest(folder, kustomization.Items("resources").Select(r => ((YamlScalarNode)r).Value!)
            .Where(r => r.EndsWith(".yaml", StringComparison.Ordinal))
            .SelectMany(r => Repository.LoadYaml($"{folder}/{r}").Select(d => new K8sObject($"{folder}/{r}", d.Text("kind")!, d.Text("metadata", "name")!, d)))
            .ToList());
    }

    static readonly Manifest BaseFiles = FromFiles(Base);

    /// <summary>A Deployment's main container with the program its image runs (null for a third-party image).</summary>
    static (YamlNode Container, ProgramSpec? Program) MainContainer(K8sObject deployment)
    {
        var container = deployment.Node.Items("spec", "template", "spec", "containers").First();
        return (container, ProgramSpec.ForImage(container.Text("image")!));
    }

    static Dictionary<string, int> NamedPorts(YamlNode container) =>
        container.Items("ports").ToDictionary(p => p.Text("name") ?? p.Text("containerPort")!, p => int.Parse(p.Text("containerPort")!));

    static int Resolve(YamlNode container, string port) =>
        int.TryParse(port, out var n) ? n : NamedPorts(container).TryGetValue(port, out var named) ? named : -1;

    static bool Selects(Dictionary<string, string> selector, Dictionary<string, string> labels) =>
        selector.Count > 0 && selector.All(s => labels.TryGetValue(s.Key, out var v) && v == s.Value);

    static Dictionary<string, string> PodLabels(K8sObject deployment) => deployment.Node.Strings("spec", "template", "metadata", "labels");

    /// <summary>A Kubernetes quantity ("16", "1.5k", "500m") as a number, or null.</summary>
    static double? Quantity(string? text)
    {
        if (string.IsNullOrEmpty(text)) return null;
        double scale = text[^1] switch { 'm' => 1e-3, 'k' => 1e3, 'M' => 1e6, _ => 1 };
        var digits = scale == 1 ? text : text[..^1];
        return double.TryParse(digits, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) ? value * scale : null;
    }

    /// <summary>Per level Deployment: a headless Service of its name on its gRPC port, an HPA on its queue depth (not CPU), a PDB.</summary>
    static IReadOnlyList<string> LevelObjectProblems(Manifest m)
    {
        var problems = new List<string>();
        if (!m.LevelDeployments.Any()) problems.Add($"{m.Source}: no level Deployment");
        foreach (var deployment in m.LevelDeployments)
        {
            var labels = PodLabels(deployment);
            var (container, _) = MainContainer(deployment);
            int grpc = m.GrpcPortOf(deployment);
            string at = $"{m.Source}: {deployment.Name}";

            var service = m.Find("Service", deployment.Name);
            if (service is null) problems.Add($"{at}: no Service of its name (callers use dns:///{deployment.Name}:{grpc})");
            else
            {
                if (service.Node.Text("spec", "clusterIP") != "None") problems.Add($"{at}: Service {service.Name} is not headless (clusterIP: None)");
                if (!Selects(service.Node.Strings("spec", "selector"), labels)) problems.Add($"{at}: Service {service.Name} does not select its pods");
                if (!service.Node.Items("spec", "ports").Any(p => int.Parse(p.Text("port")!) == grpc && Resolve(container, p.Text("targetPort")!) == grpc))
                    problems.Add($"{at}: Service {service.Name} has no port {grpc} to the gRPC port");
            }

            var hpas = m.OfKind("HorizontalPodAutoscaler").Where(h => h.Node.Text("spec", "scaleTargetRef", "name") == deployment.Name).ToList();
            if (hpas.Count != 1) problems.Add($"{at}: {hpas.Count} HorizontalPodAutoscalers scale it, not one");
            foreach (var hpa in hpas)
            {
                if (hpa.Node.Text("apiVersion") != "autoscaling/v2") problems.Add($"{at}: HPA {hpa.Name} is {hpa.Node.Text("apiVersion")}, not autoscaling/v2");
                if (hpa.Node.Text("spec", "scaleTargetRef", "kind") != "Deployment") problems.Add($"{at}: HPA {hpa.Name} does not scale a Deployment");
                var metrics = hpa.Node.Items("spec", "metrics").ToList();
                if (!metrics.Any(x => x.Text("type") == "Pods" && x.Text("pods", "metric", "name") == QueueDepthMetric
                        && x.Text("pods", "target", "type") == "AverageValue" && Quantity(x.Text("pods", "target", "averageValue")) > 0))
                    problems.Add($"{at}: HPA {hpa.Name} has no Pods metric {QueueDepthMetric} with an AverageValue target above 0");
                foreach (var other in metrics.Where(x => x.Text("type") != "Pods" || x.Text("pods", "metric", "name") != QueueDepthMetric))
                    problems.Add($"{at}: HPA {hpa.Name} also scales on {other.Text("type")} {other.Text("resource", "name") ?? other.Text("pods", "metric", "name")}: a level scales on its queue depth, not CPU");
                if (int.TryParse(hpa.Node.Text("spec", "maxReplicas"), out var max) && int.TryParse(hpa.Node.Text("spec", "minReplicas") ?? "1", out var min) && min > max)
                    problems.Add($"{at}: HPA {hpa.Name} minReplicas {min} > maxReplicas {max}");
            }

            if (!m.OfKind("PodDisruptionBudget").Any(p => Selects(p.Node.Strings("spec", "selector", "matchLabels"), labels)))
                problems.Add($"{at}: no PodDisruptionBudget covers its pods");
        }
        return problems;
    }

    /// <summary>Each probe of a level pod and the grpc.health.v1 service it must ask.</summary>
    static readonly (string Probe, string Service)[] LevelProbes =
    [
        ("livenessProbe", LevelServiceExtensions.LivenessService),
        ("readinessProbe", LevelServiceExtensions.ReadinessService),
        ("startupProbe", LevelServiceExtensions.LivenessService),
    ];

    /// <summary>grpc.health.v1 probes on the services the level service registers, on its gRPC port; metrics where Prometheus looks.</summary>
    static void AssertLevelProbesAndMetrics(Manifest m)
    {
        foreach (var deployment in m.LevelDeployments)
        {
            var (container, _) = MainContainer(deployment);
            var env = m.EnvironmentOf(container);
            int grpc = m.GrpcPortOf(deployment);
            Assert.Equal(grpc, NamedPorts(container)["grpc"]);
            foreach (var (probe, service) in LevelProbes)
            {
                Assert.True(container.Get(probe, "grpc") is not null, $"{m.Source}: {deployment.Name}: {probe} is not a grpc probe");
                Assert.Equal(grpc, Resolve(container, container.Text(probe, "grpc", "port")!));
                Assert.Equal(service, container.Text(probe, "grpc", "service"));
            }
            var metrics = Ports.Metrics(env, ProgramSpec.LevelService.Dockerfile);
            Assert.True(metrics is not null, $"{m.Source}: {deployment.Name}: no Observability__MetricsUrl, so nothing to scrape (and no queue depth to scale on)");
            Assert.Equal(metrics, NamedPorts(container)["metrics"]);
            var annotations = deployment.Node.Strings("spec", "template", "metadata", "annotations");
            Assert.Equal(metrics.ToString(), annotations["prometheus.io/port"]);
            Assert.Equal(FractalMesh.Observability.ObservabilityOptions.MetricsPath, annotations["prometheus.io/path"]);
        }
    }

    /// <summary>Every key a Deployment of ours reads is a property of its program's options; every ConfigMap is read.</summary>
    static IReadOnlyList<string> ConfigurationProblems(Manifest m)
    {
        var problems = new List<string>();
        foreach (var deployment in m.OfKind("Deployment"))
        {
            var (container, program) = MainContainer(deployment);
            if (program is not null) problems.AddRange(program.ProblemsWith(m.EnvironmentOf(container), $"{m.Source} Deployment {deployment.Name}"));
        }
        foreach (var map in m.OfKind("ConfigMap").Where(map => !m.OfKind("Deployment")
                     .Any(d => MainContainer(d).Container.Items("envFrom").Any(e => e.Text("configMapRef", "name") == map.Name))))
            problems.Add($"{m.Source}: ConfigMap {map.Name} is read by no Deployment");
        return problems;
    }

    /// <summary>The chain: one level Deployment per level of the model the deployment names, each calling the next, the gateway calling level 0.</summary>
    static IReadOnlyList<string> TopologyProblems(Manifest m, out FractalConfig model)
    {
        var gatewayEnv = m.EffectiveEnvironmentOf(MainContainer(m.Gateway).Container, ProgramSpec.Gateway);
        model = Topology.ModelOf(gatewayEnv["Gateway__ModelPath"], gatewayEnv.GetValueOrDefault("Gateway__Preset"), ProgramSpec.Gateway.Dockerfile);
        return Topology.Problems(model, m.LevelServers, gatewayEnv, m.ServerAt).Select(p => $"{m.Source}: {p}").ToList();
    }

    /// <summary>With <paramref name="gpu"/>: one GPU, the :cuda image and Level__Device=cuda on every level pod; never a GPU elsewhere.</summary>
    static IReadOnlyList<string> DeviceProblems(Manifest m, bool gpu)
    {
        var problems = new List<string>();
        foreach (var deployment in m.LevelDeployments)
        {
            var (container, _) = MainContainer(deployment);
            string at = $"{m.Source}: {deployment.Name}";
            var limit = container.Text("resources", "limits", "nvidia.com/gpu");
            var device = m.EffectiveEnvironmentOf(container, ProgramSpec.LevelService).GetValueOrDefault("Level__Device", "cpu");
            var image = container.Text("image")!;
            if (gpu)
            {
                if (limit != "1") problems.Add($"{at}: nvidia.com/gpu limit is {limit ?? "absent"}, not 1");
                if (!device.StartsWith("cuda", StringComparison.Ordinal)) problems.Add($"{at}: Level__Device is {device}, not cuda");
                if (!image.EndsWith(":cuda", StringComparison.Ordinal)) problems.Add($"{at}: image {image} is not the :cuda build");
            }
            else
            {
                if (limit is not null) problems.Add($"{at}: asks for nvidia.com/gpu {limit} on the CPU deployment");
                if (device != "cpu") problems.Add($"{at}: Level__Device is {device} on the CPU deployment");
            }
        }
        foreach (var deployment in m.OfKind("Deployment").Where(d => MainContainer(d).Program != ProgramSpec.LevelService))
        {
            foreach (var container in deployment.Node.Items("spec", "template", "spec", "containers"))
                if (container.Get("resources", "limits", "nvidia.com/gpu") is not null || container.Get("resources", "requests", "nvidia.com/gpu") is not null)
                    problems.Add($"{m.Source}: {deployment.Name} asks for a GPU, but only level services hold weights");
        }
        var gatewayContainer = MainContainer(m.Gateway).Container;
        var gatewayDevice = m.EffectiveEnvironmentOf(gatewayContainer, ProgramSpec.Gateway).GetValueOrDefault("Gateway__Device", "cpu");
        if (gatewayDevice != "cpu") problems.Add($"{m.Source}: the gateway's Gateway__Device is {gatewayDevice}; it holds no weights");
        if (gatewayContainer.Text("image")!.EndsWith(":cuda", StringComparison.Ordinal)) problems.Add($"{m.Source}: the gateway runs a :cuda image; it holds no weights");
        return problems;
    }

    static void AssertNone(IReadOnlyList<string> problems) => Assert.True(problems.Count == 0, string.Join("\n", problems));

    // ---- The base, from its files ----

    [Fact]
    public void EveryFileParsesAndEveryFileIsUsedByItsKustomization()
    {
        foreach (var file in Directory.GetFiles(Repository.PathOf("deploy/k8s"), "*.yaml", SearchOption.AllDirectories))
        {
            var documents = Repository.LoadYaml(Path.GetRelativePath(Repository.Root, file));
            Assert.All(documents, d => Assert.NotNull(d.Text("kind") ?? d.Text("apiVersion")));
        }
        foreach (var kustomization in Directory.GetFiles(Repository.PathOf("deploy/k8s"), "kustomization.yaml", SearchOption.AllDirectories))
        {
            var folder = Path.GetDirectoryName(kustomization)!;
            var k = Repository.LoadYaml(Path.GetRelativePath(Repository.Root, kustomization)).Single();
            var used = k.Items("resources").Select(r => ((YamlScalarNode)r).Value!)
                .Concat(k.Items("patches").Select(p => p.Text("path")).OfType<string>()).ToHashSet();
            foreach (var file in Directory.GetFiles(folder, "*.yaml").Select(Path.GetFileName))
                if (file != "kustomization.yaml")
                    Assert.True(used.Contains(file!), $"{Path.GetRelativePath(Repository.Root, folder)}/{file} is neither a resource nor a patch of its kustomization.yaml");
        }
        Assert.All(BaseFiles.Objects, o => Assert.False(string.IsNullOrEmpty(o.Name), $"{o.File}: a {o.Kind} without a name"));
    }

    [Fact]
    public void EveryConfigurationKeyIsAPropertyOfTheProgramsOptions() => AssertNone(ConfigurationProblems(BaseFiles));

    [Fact]
    public void EachLevelHasADeploymentAHeadlessServiceAQueueDepthHpaAndAPdb() => AssertNone(LevelObjectProblems(BaseFiles));

    [Fact]
    public void LevelPodsProbeTheHealthServicesTheLevelServiceRegistersOnItsGrpcPort() => AssertLevelProbesAndMetrics(BaseFiles);

    [Fact]
    public void OneLevelDeploymentPerLevelOfTheModelEachCallingTheNextAndAGatewayWithoutWeightsCallingLevelZero()
    {
        AssertNone(TopologyProblems(BaseFiles, out var model));
        Assert.Equal(model.Levels + 1, BaseFiles.LevelDeployments.Count());
    }

    [Fact]
    public void TheBaseRunsOnCpuOnly() => AssertNone(DeviceProblems(BaseFiles, gpu: false));

    [Fact]
    public void TheGatewayListensWhereItsPortsAndProbesSay()
    {
        var deployment = BaseFiles.Gateway;
        var (container, program) = MainContainer(deployment);
        var env = BaseFiles.EnvironmentOf(container);
        int grpc = Ports.Gateway("GrpcUrl", env, program!.Dockerfile), rest = Ports.Gateway("RestUrl", env, program.Dockerfile);
        Assert.Equal(grpc, NamedPorts(container)["grpc"]);
        Assert.Equal(rest, NamedPorts(container)["http"]);
        foreach (var probe in new[] { "startupProbe", "livenessProbe", "readinessProbe" })
        {
            Assert.Equal(rest, Resolve(container, container.Text(probe, "httpGet", "port")!));
            Assert.StartsWith("/healthz/", container.Text(probe, "httpGet", "path"));
        }
        Assert.Equal("/healthz/ready", container.Text("readinessProbe", "httpGet", "path"));
        var service = BaseFiles.OfKind("Service").Single(s => Selects(s.Node.Strings("spec", "selector"), PodLabels(deployment)));
        Assert.Equal([grpc, rest], service.Node.Items("spec", "ports").Select(p => Resolve(container, p.Text("targetPort")!)).Order());

        var metrics = Ports.Metrics(env, program.Dockerfile);
        Assert.True(metrics is not null, "the gateway has no Observability__MetricsUrl, so nothing to scrape");
        Assert.Equal(metrics, NamedPorts(container)["metrics"]);
        var annotations = deployment.Node.Strings("spec", "template", "metadata", "annotations");
        Assert.Equal(metrics.ToString(), annotations["prometheus.io/port"]);
        Assert.Equal(FractalMesh.Observability.ObservabilityOptions.MetricsPath, annotations["prometheus.io/path"]);
        // A headless Service behind a dns:/// address: every ready level-0 pod, balanced by the gateway.
        Assert.All(Topology.List(env, "Gateway__LevelAddresses__"), a => Assert.StartsWith("dns:///", a));
    }

    [Fact]
    public void EveryServiceSelectsPodsAndTargetsAPortTheyHave()
    {
        foreach (var service in BaseFiles.OfKind("Service"))
        {
            var deployment = BaseFiles.OfKind("Deployment").SingleOrDefault(d => Selects(service.Node.Strings("spec", "selector"), PodLabels(d)));
            Assert.True(deployment is not null, $"Service {service.Name} selects no Deployment's pods");
            var (container, _) = MainContainer(deployment!);
            var ports = NamedPorts(container);
            foreach (var port in service.Node.Items("spec", "ports"))
            {
                var target = port.Text("targetPort") ?? port.Text("port")!;
                Assert.True(int.TryParse(target, out var n) ? ports.ContainsValue(n) : ports.ContainsKey(target),
                    $"Service {service.Name}: targetPort {target} is not a port of {deployment!.Name}");
            }
        }
    }

    [Fact]
    public void EveryServiceNameAndPortAConfigurationPointsAtExists()
    {
        var problems = new List<string>();
        foreach (var map in BaseFiles.OfKind("ConfigMap"))
            foreach (var (key, value) in map.Node.Strings("data"))
                foreach (var (host, port) in Addresses.In(value))
                {
                    var service = BaseFiles.Find("Service", host);
                    if (service is null) problems.Add($"ConfigMap {map.Name}: {key}={value}: no Service '{host}'");
                    else if (!service.Node.Items("spec", "ports").Any(p => p.Text("port") == port.ToString()))
                        problems.Add($"ConfigMap {map.Name}: {key}={value}: Service {host} has no port {port}");
                }
        AssertNone(problems);
    }

    // ---- What kustomize renders ----

    /// <summary>
    /// The kubectl that renders the kustomizations: FRACTALMESH_KUBECTL, else the first kubectl on PATH. build/test.sh (the
    /// README's test command) sets FRACTALMESH_KUBECTL to one that is new enough, installing it where there is none.
    /// </summary>
    static string? Kubectl() =>
        Environment.GetEnvironmentVariable("FRACTALMESH_KUBECTL") is { Length: > 0 } named ? named
        : (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "kubectl")).FirstOrDefault(File.Exists);

    const string KubectlNeeded = "kubectl 1.24 or newer (kustomize v4.5 or newer; Debian 12's kubernetes-client 1.20 embeds kustomize v2, " +
        "which knows neither `labels`, `patches` nor `components`): run build/test.sh, which installs one, or set FRACTALMESH_KUBECTL to one";

    static readonly ConcurrentDictionary<string, Lazy<Manifest>> RenderedFolders = new();

    /// <summary>`kubectl kustomize FOLDER`, parsed (once per folder).</summary>
    static Manifest Rendered(string folder) => RenderedFolders.GetOrAdd(folder, f => new Lazy<Manifest>(() => Render(f))).Value;

    static Manifest Render(string folder)
    {
        var kubectl = Kubectl();
        Assert.True(kubectl is not null && File.Exists(kubectl), $"no kubectl at {kubectl ?? "(none on PATH)"}: this test needs {KubectlNeeded}");
        var start = new System.Diagnostics.ProcessStartInfo(kubectl!, ["kustomize", Repository.PathOf(folder)])
        { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException($"{kubectl} kustomize {folder} did not finish within 60 s");
        }
        Assert.True(process.ExitCode == 0, $"{kubectl} kustomize {folder} exited {process.ExitCode}: {error.Result.Trim()}\nThis test needs {KubectlNeeded}.");
        var stream = new YamlStream();
        stream.Load(new StringReader(output.Result));
        var objects = stream.Documents.Select(d => (YamlMappingNode)d.RootNode)
            .Select(d => new K8sObject(folder, d.Text("kind")!, d.Text("metadata", "name")!, d)).ToList();
        Assert.All(objects, o => Assert.Equal("fractalmesh", o.Node.Text("metadata", "labels", "app.kubernetes.io/part-of")));
        return new Manifest($"{folder} (rendered)", objects);
    }

    static List<string> Names(Manifest m) => m.Objects.Select(o => $"{o.Kind}/{o.Name}").Order().ToList();

    [Fact]
    public void KustomizeRendersTheBaseIntoTheObjectsItsFilesDeclare()
    {
        var rendered = Rendered(Base);
        Assert.Equal(Names(BaseFiles), Names(rendered));
        var levelImages = rendered.LevelDeployments.Select(d => MainContainer(d).Container.Text("image")!).ToList();
        Assert.NotEmpty(levelImages);
        Assert.All(levelImages, i => Assert.Equal($"{ProgramSpec.LevelService.Image}:latest", i));
        AssertNone(TopologyProblems(rendered, out _));
        AssertNone(DeviceProblems(rendered, gpu: false));
    }

    [Fact]
    public void TheGpuOverlayGivesEveryLevelPodOneGpuAndTheCudaImageAndTheGatewayNone()
    {
        var gpu = Rendered(Gpu);
        Assert.Equal(Names(BaseFiles), Names(gpu));
        AssertNone(DeviceProblems(gpu, gpu: true));
        AssertNone(ConfigurationProblems(gpu));
        AssertNone(LevelObjectProblems(gpu));
        AssertNone(TopologyProblems(gpu, out _));
    }

    [Fact]
    public void TheIn256OverlayRendersFourLevelDeploymentsChainedFromAGatewayWithoutWeightsOnGpus()
    {
        var in256 = Rendered(In256);
        AssertNone(TopologyProblems(in256, out var model));
        Assert.Equal(3, model.Levels);                        // 256 → 16 → 4 → 1: levels 0, 1, 2 and the pixel head (3)
        Assert.Equal(256, model.ImageSizes[0]);
        Assert.Equal(4, in256.LevelDeployments.Count());
        AssertNone(LevelObjectProblems(in256));
        AssertLevelProbesAndMetrics(in256);
        AssertNone(ConfigurationProblems(in256));
        AssertNone(DeviceProblems(in256, gpu: true));
        // Everything the base has, plus what the fourth level and the checkpoint need.
        Assert.Empty(Names(BaseFiles).Except(Names(in256)));

        // The checkpoint every level and the gateway name lies on a volume each of them mounts, from a claim that exists.
        foreach (var deployment in in256.LevelDeployments.Append(in256.Gateway))
        {
            var (container, program) = MainContainer(deployment);
            var env = in256.EffectiveEnvironmentOf(container, program!);
            var path = program == ProgramSpec.Gateway ? env["Gateway__ModelPath"] : env["Level__Model"];
            var mount = container.Items("volumeMounts").FirstOrDefault(v => path.StartsWith(v.Text("mountPath")!.TrimEnd('/') + "/", StringComparison.Ordinal));
            Assert.True(mount is not null, $"{deployment.Name}: no volume is mounted where its model {path} lies");
            var volume = deployment.Node.Items("spec", "template", "spec", "volumes").Single(v => v.Text("name") == mount!.Text("name"));
            var claim = volume.Text("persistentVolumeClaim", "claimName");
            Assert.True(claim is not null && in256.Find("PersistentVolumeClaim", claim) is not null,
                $"{deployment.Name}: volume {mount!.Text("name")} names no PersistentVolumeClaim of the overlay");
        }
    }

    /// <summary>The Secret volume mounted at the folder that holds <paramref name="path"/>, or null.</summary>
    static string? SecretHolding(K8sObject deployment, YamlNode container, string path)
    {
        var mount = container.Items("volumeMounts").FirstOrDefault(v => path.StartsWith(v.Text("mountPath")!.TrimEnd('/') + "/", StringComparison.Ordinal));
        if (mount is null || mount.Text("readOnly") != "true") return null;
        var volume = deployment.Node.Items("spec", "template", "spec", "volumes").SingleOrDefault(v => v.Text("name") == mount.Text("name"));
        return volume?.Text("secret", "secretName");
    }

    [Fact]
    public void TheTlsOverlayPutsEveryLevelChannelAndTheGatewaysPortsOnTlsWithCertificatesFromSecrets()
    {
        var tls = Rendered(Tls);
        Assert.Equal(Names(BaseFiles), Names(tls));
        AssertNone(ConfigurationProblems(tls));
        AssertNone(LevelObjectProblems(tls));
        AssertNone(TopologyProblems(tls, out _));
        AssertNone(DeviceProblems(tls, gpu: false));
        var problems = new List<string>();

        foreach (var deployment in tls.LevelDeployments)
        {
            var (container, _) = MainContainer(deployment);
            var env = tls.EffectiveEnvironmentOf(container, ProgramSpec.LevelService);
            int grpc = tls.GrpcPortOf(deployment);
            string at = deployment.Name;
            if (!env.GetValueOrDefault("ASPNETCORE_URLS", "").StartsWith("https://", StringComparison.Ordinal))
                problems.Add($"{at}: ASPNETCORE_URLS is {env.GetValueOrDefault("ASPNETCORE_URLS")}, not https");
            foreach (var key in new[] { "Kestrel__Certificates__Default__Path", "Kestrel__Certificates__Default__KeyPath" })
                if (!env.TryGetValue(key, out var path) || SecretHolding(deployment, container, path) != "fractalmesh-level-tls")
                    problems.Add($"{at}: {key} ({env.GetValueOrDefault(key) ?? "unset"}) is not on a read-only mount of the Secret fractalmesh-level-tls");
            // A level that calls another speaks TLS to it and checks its certificate against the level CA.
            if (Topology.List(env, "Level__NextAddresses__").Count > 0)
            {
                if (env.GetValueOrDefault("Level__NextTls") != "true") problems.Add($"{at}: calls its next level without Level__NextTls=true");
                if (!env.TryGetValue("Level__NextCaCertificatePath", out var ca) || SecretHolding(deployment, container, ca) != "fractalmesh-level-tls")
                    problems.Add($"{at}: Level__NextCaCertificatePath is not on a mount of the Secret fractalmesh-level-tls");
            }
            // The kubelet's grpc probes speak plaintext: every probe runs the image's health probe against the pod's own https port.
            foreach (var (probe, service) in LevelProbes)
            {
                if (container.Get(probe, "grpc") is not null) problems.Add($"{at}: {probe} is still a plaintext grpc probe");
                var command = container.Items(probe, "exec", "command").Select(c => ((YamlScalarNode)c).Value).ToList();
                string[] expected = ["dotnet", "/probe/FractalMesh.HealthProbe.dll", "grpc", $"https://127.0.0.1:{grpc}", service, "--insecure"];
                if (!command.SequenceEqual(expected)) problems.Add($"{at}: {probe} runs [{string.Join(' ', command)}], not [{string.Join(' ', expected)}]");
            }
        }
        Assert.Contains("/probe/", string.Join('\n', ProgramSpec.LevelService.Dockerfile.All("COPY")));

        var gateway = tls.Gateway;
        var (gatewayContainer, gatewayProgram) = MainContainer(gateway);
        var gatewayEnv = tls.EffectiveEnvironmentOf(gatewayContainer, gatewayProgram!);
        foreach (var key in new[] { "Gateway__GrpcUrl", "Gateway__RestUrl" })
            if (!gatewayEnv.GetValueOrDefault(key, "").StartsWith("https://", StringComparison.Ordinal)) problems.Add($"gateway: {key} is not https");
        foreach (var key in new[] { "Gateway__CertificatePath", "Gateway__CertificateKeyPath" })
            if (!gatewayEnv.TryGetValue(key, out var path) || SecretHolding(gateway, gatewayContainer, path) != "fractalmesh-gateway-tls")
                problems.Add($"gateway: {key} is not on a read-only mount of the Secret fractalmesh-gateway-tls");
        if (gatewayEnv.GetValueOrDefault("Gateway__LevelTls") != "true") problems.Add("gateway: calls level 0 without Gateway__LevelTls=true");
        if (!gatewayEnv.TryGetValue("Gateway__LevelCaCertificatePath", out var levelCa) || SecretHolding(gateway, gatewayContainer, levelCa) != "fractalmesh-level-tls")
            problems.Add("gateway: Gateway__LevelCaCertificatePath is not on a mount of the Secret fractalmesh-level-tls");
        // The gateway gets the level CA alone, never the level key.
        var levelSecretVolumes = gateway.Node.Items("spec", "template", "spec", "volumes").Where(v => v.Text("secret", "secretName") == "fractalmesh-level-tls").ToList();
        if (levelSecretVolumes.Any(v => !v.Items("secret", "items").Select(i => i.Text("key")).SequenceEqual(["ca.crt"])))
            problems.Add("gateway: mounts more of fractalmesh-level-tls than ca.crt");
        foreach (var probe in new[] { "startupProbe", "livenessProbe", "readinessProbe" })
            if (gatewayContainer.Text(probe, "httpGet", "scheme") != "HTTPS") problems.Add($"gateway: {probe} is not an HTTPS probe");
        AssertNone(problems);
    }

    // Security (deploy/README.md, Security): secrets only in Secrets, authentication on, and who may reach whom.

    /// <summary>Keys that hold a secret: API keys, the level call secret, certificate passwords.</summary>
    static bool IsSecretKey(string key) =>
        key.StartsWith("Auth__ApiKeys", StringComparison.OrdinalIgnoreCase) || key.Contains("Secret", StringComparison.OrdinalIgnoreCase)
        || key.Contains("Password", StringComparison.OrdinalIgnoreCase) || key.EndsWith("__Key", StringComparison.OrdinalIgnoreCase);

    static IReadOnlyList<string> SecretProblems(Manifest m)
    {
        var problems = new List<string>();
        foreach (var map in m.OfKind("ConfigMap"))
            foreach (var key in map.Node.Strings("data").Keys.Where(IsSecretKey))
                problems.Add($"{m.Source}: ConfigMap {map.Name} holds {key}: a secret belongs in a Secret");
        foreach (var deployment in m.OfKind("Deployment"))
        {
            var (container, program) = MainContainer(deployment);
            foreach (var entry in container.Items("env").Where(e => IsSecretKey(e.Text("name")!) && e.Text("value") is not null))
                problems.Add($"{m.Source}: Deployment {deployment.Name} sets {entry.Text("name")} inline: read it from a Secret");
            if (program is null) continue;
            var secrets = container.Items("envFrom").Select(e => e.Text("secretRef", "name")).OfType<string>().ToList();
            var env = m.EnvironmentOf(container);
            if (program == ProgramSpec.Gateway)
            {
                if (!secrets.Contains("fractalmesh-gateway-secrets")) problems.Add($"{m.Source}: the gateway does not read the Secret fractalmesh-gateway-secrets");
                if (env.GetValueOrDefault("Auth__Enabled") != "true") problems.Add($"{m.Source}: the gateway runs without Auth__Enabled=true");
                if (!env.ContainsKey("Gateway__LevelCallSecret")) problems.Add($"{m.Source}: the gateway sends no level call secret");
            }
            else if (!secrets.Contains("fractalmesh-level-secrets") || !env.ContainsKey("Level__CallSecret"))
                problems.Add($"{m.Source}: level Deployment {deployment.Name} does not take Level__CallSecret from the Secret fractalmesh-level-secrets");
        }
        return problems;
    }

    /// <summary>The Deployments whose pods a NetworkPolicy peer list admits (pod selectors only: no namespace or IP peers).</summary>
    static List<string> Admitted(Manifest m, YamlNode rule, List<string> problems, string where)
    {
        var admitted = new List<string>();
        var peers = rule.Items("from").ToList();
        if (peers.Count == 0) problems.Add($"{where}: a rule admits every source");
        foreach (var peer in peers)
        {
            if (peer.Get("namespaceSelector") is not null || peer.Get("ipBlock") is not null || peer.Get("podSelector") is null)
                problems.Add($"{where}: a peer that is not a pod selector of this namespace");
            var selector = peer.Strings("podSelector", "matchLabels");
            admitted.AddRange(m.OfKind("Deployment").Where(d => selector.Count > 0 && Selects(selector, PodLabels(d))).Select(d => d.Name));
        }
        return admitted;
    }

    /// <summary>
    /// Level pods' gRPC port admits only the gateway and level pods; Redis admits only the gateway; every level pod and
    /// Redis is covered by a policy; nothing else opens those ports.
    /// </summary>
    static IReadOnlyList<string> NetworkPolicyProblems(Manifest m)
    {
        var problems = new List<string>();
        var policies = m.OfKind("NetworkPolicy").ToList();
        var levels = m.LevelDeployments.Select(d => d.Name).ToHashSet();
        string gateway = m.Gateway.Name;
        var redis = m.OfKind("Deployment").Where(d => MainContainer(d).Container.Text("image")!.StartsWith("redis", StringComparison.Ordinal)).ToList();
        if (redis.Count == 0) problems.Add($"{m.Source}: no Redis Deployment");
        foreach (var target in m.LevelDeployments.Concat(redis))
        {
            var covering = policies.Where(p => Selects(p.Node.Strings("spec", "podSelector", "matchLabels"), PodLabels(target))).ToList();
            if (covering.Count == 0) { problems.Add($"{m.Source}: no NetworkPolicy selects Deployment {target.Name}'s pods"); continue; }
            bool isLevel = levels.Contains(target.Name);
            var container = MainContainer(target).Container;
            int guarded = isLevel ? m.GrpcPortOf(target) : 6379;
            var allowed = isLevel ? levels.Append(gateway).ToHashSet() : [gateway];
            foreach (var policy in covering)
            {
                string where = $"{m.Source}: NetworkPolicy {policy.Name} on {target.Name}";
                if (!policy.Node.Items("spec", "policyTypes").Select(t => ((YamlScalarNode)t).Value).Contains("Ingress"))
                    problems.Add($"{where}: not an Ingress policy");
                bool reachable = false;
                foreach (var rule in policy.Node.Items("spec", "ingress"))
                {
                    var ports = rule.Items("ports").Select(p => p.Text("port")!).ToList();
                    bool opensGuarded = ports.Count == 0 || ports.Any(p => (int.TryParse(p, out var n) ? n : Resolve(container, p)) == guarded);
                    if (!opensGuarded) continue;
                    var admitted = Admitted(m, rule, problems, where);
                    foreach (var stranger in admitted.Where(a => !allowed.Contains(a)).Distinct())
                        problems.Add($"{where}: Deployment {stranger} may reach port {guarded}");
                    reachable |= admitted.Contains(gateway);
                }
                if (!reachable) problems.Add($"{where}: the gateway cannot reach port {guarded}");
            }
        }
        return problems;
    }

    [Fact]
    public void NoSecretSitsInAConfigMapAndEveryProgramReadsItsSecretsFromASecretWithAuthenticationOn()
    {
        AssertNone(SecretProblems(BaseFiles));
        foreach (var folder in new[] { Base, Gpu, In256, Tls }) AssertNone(SecretProblems(Rendered(folder)));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, GeneratedSecrets.ModeOf("gateway.env"));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, GeneratedSecrets.ModeOf("level.env"));
        }
        Assert.Equal(GeneratedSecrets.Read("gateway.env")["Gateway__LevelCallSecret"], GeneratedSecrets.Read("level.env")["Level__CallSecret"]);
    }

    [Fact]
    public void OnlyTheGatewayAndLevelsReachTheLevelsAndOnlyTheGatewayReachesRedis()
    {
        AssertNone(NetworkPolicyProblems(BaseFiles));
        foreach (var folder in new[] { Base, Gpu, In256, Tls }) AssertNone(NetworkPolicyProblems(Rendered(folder)));
    }
}
