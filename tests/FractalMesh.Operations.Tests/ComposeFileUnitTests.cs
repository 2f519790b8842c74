using FractalMesh.LevelService.Extensions;
using YamlDotNet.RepresentationModel;
using Xunit;

namespace FractalMesh.Operations.Tests;

/// <summary>
/// docker-compose.yml parses and agrees with the code: keys, ports, service names, health checks, scaling, and the
/// per-level topology (one service per level of the model, each calling the next, a gateway without weights calling level 0).
/// </summary>
public sealed class ComposeFileUnitTests
{
    const string File = "docker-compose.yml";
    static readonly YamlMappingNode Compose = Repository.LoadYaml(File).Single();

    static Dictionary<string, YamlNode> Services => Compose.Entries("services").ToDictionary(e => e.Key, e => e.Value);

    /// <summary>The services that run one of our programs, with the program.</summary>
    static IEnumerable<(string Name, YamlNode Service, ProgramSpec Program)> OurServices =>
        Services.Select(s => (s.Key, s.Value, ProgramSpec.ForImage(s.Value.Text("image") ?? "")))
            .Where(s => s.Item3 is not null).Select(s => (s.Key, s.Value, s.Item3!));

    static IEnumerable<(string Name, YamlNode Service)> LevelServices =>
        OurServices.Where(s => s.Program == ProgramSpec.LevelService).Select(s => (s.Name, s.Service));

    /// <summary>
    /// What a service's program reads: its env_file entries (deploy/make-secrets.sh's files, made for the test) overridden
    /// by its environment.
    /// </summary>
    static Dictionary<string, string> Environment(YamlNode service)
    {
        var env = new Dictionary<string, string>();
        foreach (var file in EnvFiles(service))
            foreach (var (k, v) in GeneratedSecrets.Read(Path.GetFileName(file))) env[k] = v;
        foreach (var (k, v) in service.Strings("environment")) env[k] = v;
        return env;
    }

    static List<string> EnvFiles(YamlNode service) => service.Items("env_file").Select(f => ((YamlScalarNode)f).Value!).ToList();

    static IEnumerable<int> ContainerPorts(YamlNode service) =>
        service.Items("expose").Concat(service.Items("ports")).Select(p => int.Parse(((YamlScalarNode)p).Value!.Split(':').Last().Split('/')[0]));

    [Fact]
    public void HasRedisAGatewayAndALevelService()
    {
        Assert.Contains("redis", Services.Keys);
        Assert.Contains(OurServices, s => s.Program == ProgramSpec.Gateway);
        Assert.NotEmpty(LevelServices);
    }

    [Fact]
    public void EveryServiceOfOursIsBuiltFromItsProgramsDockerfileWithTheLibTorchBackendArgument()
    {
        foreach (var (name, service, program) in OurServices)
        {
            Assert.Equal(".", service.Text("build", "context"));
            Assert.Equal(program.DockerfilePath, service.Text("build", "dockerfile"));
            Assert.Contains("LIBTORCH_BACKEND", service.Strings("build", "args").Keys);
            Assert.True(System.IO.File.Exists(Repository.PathOf(program.DockerfilePath)), $"{name}: {program.DockerfilePath} is missing");
        }
    }

    [Fact]
    public void EveryEnvironmentVariableIsAKeyOfTheProgramsOptions()
    {
        var problems = OurServices.SelectMany(s => s.Program.ProblemsWith(Environment(s.Service), $"{File} service {s.Name}")).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void LevelServicesCanBeScaled()
    {
        foreach (var (name, service) in LevelServices)
        {
            Assert.True(service.Get("container_name") is null, $"{name}: container_name stops --scale {name}=N");
            Assert.True(service.Get("ports") is null, $"{name}: a published host port stops --scale {name}=N (callers use dns:///{name}:PORT)");
        }
    }

    [Fact]
    public void LevelServicesExposeTheirGrpcAndMetricsPortsAndAreHealthCheckedOnReadiness()
    {
        var image = ProgramSpec.LevelService.Dockerfile;
        foreach (var (name, service) in LevelServices)
        {
            var env = Environment(service);
            int grpc = Ports.LevelService(env, image);
            Assert.Contains(grpc, ContainerPorts(service));
            if (Ports.Metrics(env, image) is { } metrics) Assert.Contains(metrics, ContainerPorts(service));
            var test = service.Items("healthcheck", "test").Select(t => ((YamlScalarNode)t).Value!).ToList();
            Assert.Equal(["CMD", "dotnet", "/probe/FractalMesh.HealthProbe.dll", "grpc"], test.Take(4));
            Assert.Equal(grpc, Ports.OfUrl(test[4]));
            Assert.Equal(LevelServiceExtensions.ReadinessService, test[5]);
        }
    }

    [Fact]
    public void TheGatewayPublishesItsGrpcAndRestPortsAndIsHealthCheckedOnReadiness()
    {
        var (_, service, program) = OurServices.Single(s => s.Program == ProgramSpec.Gateway);
        var env = Environment(service);
        int grpc = Ports.Gateway("GrpcUrl", env, program.Dockerfile), rest = Ports.Gateway("RestUrl", env, program.Dockerfile);
        var published = ContainerPorts(service).ToList();
        Assert.Contains(grpc, published);
        Assert.Contains(rest, published);
        var test = service.Items("healthcheck", "test").Select(t => ((YamlScalarNode)t).Value!).ToList();
        Assert.Equal(["CMD", "dotnet", "/probe/FractalMesh.HealthProbe.dll", "http"], test.Take(4));
        Assert.Equal(rest, Ports.OfUrl(test[4]));
        Assert.EndsWith("/healthz/ready", test[4]);
    }

    /// <summary>A service's environment over its image's ENV: what the program reads.</summary>
    static Dictionary<string, string> Effective(YamlNode service, ProgramSpec program)
    {
        var env = new Dictionary<string, string>(program.Dockerfile.Environment);
        foreach (var (key, value) in Environment(service)) env[key] = value;
        return env;
    }

    static List<LevelServer> LevelServers => LevelServices
        .Select(l => new LevelServer(l.Name, Effective(l.Service, ProgramSpec.LevelService), Ports.LevelService(Environment(l.Service), ProgramSpec.LevelService.Dockerfile)))
        .ToList();

    static IEnumerable<string> DependsOn(YamlNode service) =>
        service.Entries("depends_on").Select(e => e.Key).Concat(service.Items("depends_on").Select(i => ((YamlScalarNode)i).Value!));

    [Fact]
    public void OneServicePerLevelOfTheModelEachCallingTheNextAndAGatewayWithoutWeightsCallingLevelZero()
    {
        var (_, gateway, program) = OurServices.Single(s => s.Program == ProgramSpec.Gateway);
        var gatewayEnv = Effective(gateway, program);
        var model = Topology.ModelOf(gatewayEnv["Gateway__ModelPath"], gatewayEnv.GetValueOrDefault("Gateway__Preset"), program.Dockerfile);
        var servers = LevelServers;
        var problems = Topology.Problems(model, servers, gatewayEnv, (host, port) => servers.SingleOrDefault(s => s.Name == host && s.Port == port));
        Assert.True(problems.Count == 0, $"{File}:\n" + string.Join("\n", problems));
        Assert.Equal(model.Levels + 1, servers.Count);
    }

    [Fact]
    public void EachCallerStartsAfterTheServiceItCallsIsHealthy()
    {
        var servers = LevelServers;
        var callers = OurServices.Select(s => (s.Name, s.Service, Addresses: s.Program == ProgramSpec.Gateway
            ? Topology.List(Environment(s.Service), "Gateway__LevelAddresses__") : Topology.List(Environment(s.Service), "Level__NextAddresses__")));
        foreach (var (name, service, addresses) in callers)
            foreach (var (host, _) in addresses.SelectMany(Addresses.In).Distinct())
            {
                Assert.True(servers.Any(s => s.Name == host), $"{name} calls {host}, which is no level service");
                Assert.True(DependsOn(service).Contains(host), $"{name} calls {host} but does not depend on it: it would start before its next level");
                Assert.Equal("service_healthy", service.Text("depends_on", host, "condition"));
            }
        // And nothing above the gateway: it depends on no level service but level 0's.
        var (gatewayName, gateway, _) = OurServices.Single(s => s.Program == ProgramSpec.Gateway);
        Assert.Equal(servers.Where(s => s.FirstLevel == 0).Select(s => s.Name), DependsOn(gateway).Where(d => servers.Any(s => s.Name == d)));
    }

    [Fact]
    public void TheGatewayExposesItsMetricsAndAsksForNoGpu()
    {
        var (name, service, program) = OurServices.Single(s => s.Program == ProgramSpec.Gateway);
        var env = Environment(service);
        var metrics = Ports.Metrics(env, program.Dockerfile);
        Assert.True(metrics is not null, $"{name}: no Observability__MetricsUrl, so nothing to scrape");
        Assert.Contains(metrics.Value, ContainerPorts(service));
        // It holds no weights: a CUDA device would reserve a GPU for nothing.
        Assert.Equal("cpu", env.GetValueOrDefault("Gateway__Device", "cpu"));
    }

    [Fact]
    public void EveryServiceNameAndPortAConfigurationPointsAtExists()
    {
        var listening = Services.ToDictionary(s => s.Key, s => ContainerPorts(s.Value).ToHashSet());
        foreach (var (name, service, program) in OurServices)
        {
            var env = Environment(service);
            if (program == ProgramSpec.LevelService) listening[name].Add(Ports.LevelService(env, program.Dockerfile));
        }
        var problems = new List<string>();
        foreach (var (name, service) in Services)
            foreach (var (key, value) in Environment(service))
                foreach (var (host, port) in Addresses.In(value))
                {
                    if (!listening.TryGetValue(host, out var ports)) problems.Add($"{name}: {key}={value}: no service '{host}'");
                    else if (!ports.Contains(port)) problems.Add($"{name}: {key}={value}: {host} listens on {string.Join(", ", ports)}, not {port}");
                }
        foreach (var (name, service) in Services)
            foreach (var dependency in DependsOn(service))
                if (!Services.ContainsKey(dependency)) problems.Add($"{name}: depends_on names no service '{dependency}'");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void AuthenticationIsOnAndSecretsComeFromTheFilesMakeSecretsWritesNeverFromTheComposeFile()
    {
        foreach (var (name, service, program) in OurServices)
        {
            var files = EnvFiles(service);
            string expected = program == ProgramSpec.Gateway ? "deploy/secrets/gateway.env" : "deploy/secrets/level.env";
            Assert.True(files.SequenceEqual([expected]), $"{name}: env_file should be {expected}, is [{string.Join(", ", files)}]");
            Assert.DoesNotContain(service.Strings("environment").Keys, k => k.StartsWith("Auth__ApiKeys", StringComparison.Ordinal) || k.Contains("Secret", StringComparison.Ordinal));
            var env = Environment(service);
            if (program == ProgramSpec.Gateway)
            {
                Assert.Equal("true", env["Auth__Enabled"]);
                Assert.Equal(env["Gateway__LevelCallSecret"], GeneratedSecrets.Read("level.env")["Level__CallSecret"]);
            }
            else Assert.NotEmpty(env["Level__CallSecret"]);
        }
        Assert.Contains("/deploy/secrets/", System.IO.File.ReadAllLines(Repository.PathOf(".gitignore")));
    }
}
