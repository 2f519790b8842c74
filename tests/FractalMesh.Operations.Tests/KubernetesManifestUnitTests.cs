using FractalMesh.LevelService.Extensions;
using YamlDotNet.RepresentationModel;
using Xunit;

namespace FractalMesh.Operations.Tests;

/// <summary>
/// deploy/k8s (kustomize base and the gpu overlay) parses and agrees with the code: per level a Deployment with grpc.health.v1
/// probes on the services the level service registers, a headless Service, a CPU HPA and a PDB; the gateway and Redis;
/// configuration keys that exist, ports that match, names that resolve; one GPU per level pod in the overlay.
/// </summary>
public sealed class KubernetesManifestUnitTests
{
    const string Base = "deploy/k8s/base";
    const string Gpu = "deploy/k8s/overlays/gpu";

    /// <summary>One object of a manifest: its kind, name and where it came from.</summary>
    sealed record K8sObject(string File, string Kind, string Name, YamlMappingNode Node);

    static IReadOnlyList<K8sObject> Load(string folder)
    {
        var kustomization = Repository.LoadYaml($"{folder}/kustomization.yaml").Single();
        return kustomization.Items("resources").Select(r => ((YamlScalarNode)r).Value!)
            .Where(r => r.EndsWith(".yaml", StringComparison.Ordinal))
            .SelectMany(r => Repository.LoadYaml($"{folder}/{r}").Select(d => new K8sObject($"{folder}/{r}", d.Text("kind")!, d.Text("metadata", "name")!, d)))
            .ToList();
    }

    static readonly IReadOnlyList<K8sObject> Objects = Load(Base);

    static IEnumerable<K8sObject> OfKind(string kind) => Objects.Where(o => o.Kind == kind);

    static K8sObject? Find(string kind, string name) => Objects.SingleOrDefault(o => o.Kind == kind && o.Name == name);

    /// <summary>A Deployment's main container with the program its image runs (null for a third-party image).</summary>
    static (YamlNode Container, ProgramSpec? Program) MainContainer(K8sObject deployment)
    {
        var container = deployment.Node.Items("spec", "template", "spec", "containers").First();
        return (container, ProgramSpec.ForImage(container.Text("image")!));
    }

    /// <summary>The environment a container gets: its ConfigMaps (envFrom) and its own env entries.</summary>
    static Dictionary<string, string> EnvironmentOf(YamlNode container)
    {
        var env = new Dictionary<string, string>();
        foreach (var source in container.Items("envFrom"))
        {
            var name = source.Text("configMapRef", "name")!;
            var map = Find("ConfigMap", name) ?? throw new Xunit.Sdk.XunitException($"envFrom names no ConfigMap '{name}'");
            foreach (var (k, v) in map.Node.Strings("data")) env[k] = v;
        }
        foreach (var entry in container.Items("env")) env[entry.Text("name")!] = entry.Text("value") ?? "";
        return env;
    }

    static Dictionary<string, int> NamedPorts(YamlNode container) =>
        container.Items("ports").ToDictionary(p => p.Text("name") ?? p.Text("containerPort")!, p => int.Parse(p.Text("containerPort")!));

    static int Resolve(YamlNode container, string port) => int.TryParse(port, out var n) ? n : NamedPorts(container)[port];

    static bool Selects(Dictionary<string, string> selector, Dictionary<string, string> labels) =>
        selector.Count > 0 && selector.All(s => labels.TryGetValue(s.Key, out var v) && v == s.Value);

    static Dictionary<string, string> PodLabels(K8sObject deployment) => deployment.Node.Strings("spec", "template", "metadata", "labels");

    static IEnumerable<K8sObject> LevelDeployments =>
        OfKind("Deployment").Where(d => MainContainer(d).Program == ProgramSpec.LevelService);

    [Fact]
    public void EveryFileParsesAndEveryFileInTheBaseIsAResource()
    {
        foreach (var file in Directory.GetFiles(Repository.PathOf("deploy/k8s"), "*.yaml", SearchOption.AllDirectories))
        {
            var documents = Repository.LoadYaml(Path.GetRelativePath(Repository.Root, file));
            Assert.All(documents, d => Assert.NotNull(d.Text("kind") ?? d.Text("apiVersion")));
        }
        var listed = Repository.LoadYaml($"{Base}/kustomization.yaml").Single().Items("resources").Select(r => ((YamlScalarNode)r).Value!).ToHashSet();
        foreach (var file in Directory.GetFiles(Repository.PathOf(Base), "*.yaml").Select(Path.GetFileName))
            if (file != "kustomization.yaml") Assert.Contains(file!, listed);
        Assert.All(Objects, o => Assert.False(string.IsNullOrEmpty(o.Name), $"{o.File}: a {o.Kind} without a name"));
    }

    [Fact]
    public void EveryConfigurationKeyIsAPropertyOfTheProgramsOptions()
    {
        var problems = new List<string>();
        foreach (var deployment in OfKind("Deployment"))
        {
            var (container, program) = MainContainer(deployment);
            if (program is not null) problems.AddRange(program.ProblemsWith(EnvironmentOf(container), $"{deployment.File} Deployment {deployment.Name}"));
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        Assert.All(OfKind("ConfigMap"), map => Assert.Contains(OfKind("Deployment"),
            d => MainContainer(d).Container.Items("envFrom").Any(e => e.Text("configMapRef", "name") == map.Name)));
    }

    [Fact]
    public void EachLevelHasADeploymentAHeadlessServiceAnHpaOnCpuAndAPdb()
    {
        Assert.NotEmpty(LevelDeployments);
        foreach (var deployment in LevelDeployments)
        {
            var labels = PodLabels(deployment);
            var (container, _) = MainContainer(deployment);
            int grpc = Ports.LevelService(EnvironmentOf(container), ProgramSpec.LevelService.Dockerfile);

            var service = Find("Service", deployment.Name);
            Assert.True(service is not null, $"level Deployment {deployment.Name} has no Service of its name (callers use dns:///{deployment.Name}:{grpc})");
            Assert.Equal("None", service!.Node.Text("spec", "clusterIP"));
            Assert.True(Selects(service.Node.Strings("spec", "selector"), labels), $"Service {service.Name} does not select the pods of {deployment.Name}");
            Assert.Contains(service.Node.Items("spec", "ports"), p => int.Parse(p.Text("port")!) == grpc && Resolve(container, p.Text("targetPort")!) == grpc);

            var hpa = OfKind("HorizontalPodAutoscaler").SingleOrDefault(h => h.Node.Text("spec", "scaleTargetRef", "name") == deployment.Name);
            Assert.True(hpa is not null, $"no HorizontalPodAutoscaler scales {deployment.Name}");
            Assert.Equal("Deployment", hpa!.Node.Text("spec", "scaleTargetRef", "kind"));
            Assert.Contains(hpa.Node.Items("spec", "metrics"), m => m.Text("type") == "Resource" && m.Text("resource", "name") == "cpu");
            Assert.NotNull(container.Text("resources", "requests", "cpu"));   // an HPA on CPU utilization needs a request

            var pdb = OfKind("PodDisruptionBudget").SingleOrDefault(p => Selects(p.Node.Strings("spec", "selector", "matchLabels"), labels));
            Assert.True(pdb is not null, $"no PodDisruptionBudget covers the pods of {deployment.Name}");
        }
    }

    [Fact]
    public void LevelPodsProbeTheHealthServicesTheLevelServiceRegistersOnItsGrpcPort()
    {
        foreach (var deployment in LevelDeployments)
        {
            var (container, _) = MainContainer(deployment);
            var env = EnvironmentOf(container);
            int grpc = Ports.LevelService(env, ProgramSpec.LevelService.Dockerfile);
            Assert.Equal(grpc, NamedPorts(container)["grpc"]);
            foreach (var (probe, service) in new[] { ("livenessProbe", LevelServiceExtensions.LivenessService),
                         ("readinessProbe", LevelServiceExtensions.ReadinessService), ("startupProbe", LevelServiceExtensions.LivenessService) })
            {
                Assert.True(container.Get(probe, "grpc") is not null, $"{deployment.Name}: {probe} is not a grpc probe");
                Assert.Equal(grpc, Resolve(container, container.Text(probe, "grpc", "port")!));
                Assert.Equal(service, container.Text(probe, "grpc", "service"));
            }
            var metrics = Ports.Metrics(env, ProgramSpec.LevelService.Dockerfile);
            Assert.True(metrics is not null, $"{deployment.Name}: no Observability__MetricsUrl, so nothing to scrape");
            Assert.Equal(metrics, NamedPorts(container)["metrics"]);
            var annotations = deployment.Node.Strings("spec", "template", "metadata", "annotations");
            Assert.Equal(metrics.ToString(), annotations["prometheus.io/port"]);
            Assert.Equal(FractalMesh.Observability.ObservabilityOptions.MetricsPath, annotations["prometheus.io/path"]);
        }
    }

    [Fact]
    public void TheGatewayListensWhereItsPortsAndProbesSay()
    {
        var deployment = OfKind("Deployment").Single(d => MainContainer(d).Program == ProgramSpec.Gateway);
        var (container, program) = MainContainer(deployment);
        var env = EnvironmentOf(container);
        int grpc = Ports.Gateway("GrpcUrl", env, program!.Dockerfile), rest = Ports.Gateway("RestUrl", env, program.Dockerfile);
        Assert.Equal(grpc, NamedPorts(container)["grpc"]);
        Assert.Equal(rest, NamedPorts(container)["http"]);
        foreach (var probe in new[] { "startupProbe", "livenessProbe", "readinessProbe" })
        {
            Assert.Equal(rest, Resolve(container, container.Text(probe, "httpGet", "port")!));
            Assert.StartsWith("/healthz/", container.Text(probe, "httpGet", "path"));
        }
        Assert.Equal("/healthz/ready", container.Text("readinessProbe", "httpGet", "path"));
        var service = OfKind("Service").Single(s => Selects(s.Node.Strings("spec", "selector"), PodLabels(deployment)));
        Assert.Equal([grpc, rest], service.Node.Items("spec", "ports").Select(p => Resolve(container, p.Text("targetPort")!)).Order());
    }

    [Fact]
    public void TheGatewayRunsDistributedCallingTheLevelDeploymentThatServesItsFirstRemoteLevel()
    {
        var deployment = OfKind("Deployment").Single(d => MainContainer(d).Program == ProgramSpec.Gateway);
        var (container, program) = MainContainer(deployment);
        var env = EnvironmentOf(container);
        var addresses = env.Where(e => e.Key.StartsWith("Gateway__LevelAddresses__", StringComparison.Ordinal)).Select(e => e.Value).ToList();
        Assert.True(addresses.Count > 0, "the gateway has no Gateway__LevelAddresses__0: it would run every level itself (embedded mode)");
        int first = env.TryGetValue("Gateway__FirstRemoteLevel", out var f) ? int.Parse(f) : new FractalMesh.Gateway.GatewayOptions().FirstRemoteLevel;
        foreach (var address in addresses)
        {
            Assert.StartsWith("dns:///", address);   // a headless Service: every ready pod, balanced by the gateway
            var (host, port) = Addresses.In(address).Single();
            var service = Find("Service", host);
            Assert.True(service is not null, $"Gateway:LevelAddresses {address}: no Service '{host}'");
            var level = LevelDeployments.Single(d => Selects(service!.Node.Strings("spec", "selector"), PodLabels(d)));
            var levelEnv = EnvironmentOf(MainContainer(level).Container);
            Assert.Equal(port, Ports.LevelService(levelEnv, ProgramSpec.LevelService.Dockerfile));
            Assert.True(int.Parse(levelEnv.GetValueOrDefault("Level__FirstLevel", "0")) == first,
                $"the gateway sends level {first} to {level.Name}, which serves from level {levelEnv.GetValueOrDefault("Level__FirstLevel", "0")}");
        }
        var metrics = Ports.Metrics(env, program!.Dockerfile);
        Assert.True(metrics is not null, "the gateway has no Observability__MetricsUrl, so nothing to scrape");
        Assert.Equal(metrics, NamedPorts(container)["metrics"]);
        var annotations = deployment.Node.Strings("spec", "template", "metadata", "annotations");
        Assert.Equal(metrics.ToString(), annotations["prometheus.io/port"]);
        Assert.Equal(FractalMesh.Observability.ObservabilityOptions.MetricsPath, annotations["prometheus.io/path"]);
    }

    [Fact]
    public void EveryServiceSelectsPodsAndTargetsAPortTheyHave()
    {
        foreach (var service in OfKind("Service"))
        {
            var deployment = OfKind("Deployment").SingleOrDefault(d => Selects(service.Node.Strings("spec", "selector"), PodLabels(d)));
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
        foreach (var map in OfKind("ConfigMap"))
            foreach (var (key, value) in map.Node.Strings("data"))
                foreach (var (host, port) in Addresses.In(value))
                {
                    var service = Find("Service", host);
                    if (service is null) problems.Add($"ConfigMap {map.Name}: {key}={value}: no Service '{host}'");
                    else if (!service.Node.Items("spec", "ports").Any(p => p.Text("port") == port.ToString()))
                        problems.Add($"ConfigMap {map.Name}: {key}={value}: Service {host} has no port {port}");
                }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void TheGpuOverlayGivesEveryLevelPodOneGpuAndTheCudaImage()
    {
        var overlay = Repository.LoadYaml($"{Gpu}/kustomization.yaml").Single();
        Assert.Contains(overlay.Items("resources"), r => ((YamlScalarNode)r).Value == "../../base");
        Assert.Contains(overlay.Items("images"), i => i.Text("name") == ProgramSpec.LevelService.Image && i.Text("newTag") == "cuda");
        var patches = overlay.Items("patches").Select(p => p.Text("path")!)
            .SelectMany(p => Repository.LoadYaml($"{Gpu}/{p}").Select(d => (File: p, Node: d))).ToList();
        foreach (var (file, patch) in patches)
            Assert.True(Find(patch.Text("kind")!, patch.Text("metadata", "name")!) is not null,
                $"{Gpu}/{file}: patches {patch.Text("kind")} {patch.Text("metadata", "name")}, which the base does not have");
        foreach (var deployment in LevelDeployments)
        {
            var containerName = MainContainer(deployment).Container.Text("name");
            var patched = patches.Where(p => p.Node.Text("kind") == "Deployment" && p.Node.Text("metadata", "name") == deployment.Name)
                .SelectMany(p => p.Node.Items("spec", "template", "spec", "containers"))
                .Where(c => c.Text("name") == containerName);
            Assert.Contains(patched, c => c.Text("resources", "limits", "nvidia.com/gpu") == "1");
        }
        var configPatches = patches.Where(p => p.Node.Text("kind") == "ConfigMap").ToList();
        var problems = configPatches.SelectMany(p => ProgramSpec.LevelService.ProblemsWith(p.Node.Strings("data"), $"{Gpu}/{p.File}")).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        Assert.Contains(configPatches, p => p.Node.Strings("data").GetValueOrDefault("Level__Device") == "cuda");
    }

    /// <summary>
    /// The kubectl that renders the kustomizations: FRACTALMESH_KUBECTL, else the first kubectl on PATH. build/test.sh (the
    /// README's test command) sets FRACTALMESH_KUBECTL to one that is new enough, installing it where there is none.
    /// </summary>
    static string? Kubectl() =>
        Environment.GetEnvironmentVariable("FRACTALMESH_KUBECTL") is { Length: > 0 } named ? named
        : (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "kubectl")).FirstOrDefault(File.Exists);

    const string KubectlNeeded = "kubectl 1.24 or newer (kustomize v4.5 or newer; Debian 12's kubernetes-client 1.20 embeds kustomize v2, " +
        "which knows neither `labels` nor `patches`): run build/test.sh, which installs one, or set FRACTALMESH_KUBECTL to one";

    [Fact]
    public async Task KustomizeRendersTheBaseAndTheGpuOverlayIntoTheObjectsTheFilesDeclare()
    {
        var kubectl = Kubectl();
        Assert.True(kubectl is not null && File.Exists(kubectl), $"no kubectl at {kubectl ?? "(none on PATH)"}: this test needs {KubectlNeeded}");
        var declared = Objects.Select(o => $"{o.Kind}/{o.Name}").Order().ToList();
        foreach (var folder in new[] { Base, Gpu })
        {
            var start = new System.Diagnostics.ProcessStartInfo(kubectl!, ["kustomize", Repository.PathOf(folder)])
            { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var process = System.Diagnostics.Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try { await process.WaitForExitAsync(timeout.Token); }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new Xunit.Sdk.XunitException($"{kubectl} kustomize {folder} did not finish within 60 s");
            }
            Assert.True(process.ExitCode == 0, $"{kubectl} kustomize {folder} exited {process.ExitCode}: {(await error).Trim()}\nThis test needs {KubectlNeeded}.");

            var stream = new YamlStream();
            stream.Load(new StringReader(await output));
            var rendered = stream.Documents.Select(d => (YamlMappingNode)d.RootNode).ToList();
            Assert.Equal(declared, rendered.Select(d => $"{d.Text("kind")}/{d.Text("metadata", "name")}").Order().ToList());
            Assert.All(rendered, d => Assert.Equal("fractalmesh", d.Text("metadata", "labels", "app.kubernetes.io/part-of")));

            var levelImages = rendered.Where(d => d.Text("kind") == "Deployment")
                .SelectMany(d => d.Items("spec", "template", "spec", "containers"))
                .Select(c => c.Text("image")!).Where(i => i.StartsWith(ProgramSpec.LevelService.Image + ":", StringComparison.Ordinal)).ToList();
            Assert.NotEmpty(levelImages);
            Assert.All(levelImages, i => Assert.Equal($"{ProgramSpec.LevelService.Image}:{(folder == Gpu ? "cuda" : "latest")}", i));
            Assert.Equal(folder == Gpu, (await output).Contains("nvidia.com/gpu", StringComparison.Ordinal));
        }
    }
}
