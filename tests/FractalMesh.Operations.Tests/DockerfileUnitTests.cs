using System.Text.RegularExpressions;
using FractalMesh.LevelService.Extensions;
using Xunit;

namespace FractalMesh.Operations.Tests;

/// <summary>The two Dockerfiles build the right project on the official .NET images and agree with the programs' settings.</summary>
public sealed class DockerfileUnitTests
{
    public static TheoryData<string> Programs => new(ProgramSpec.All.Select(p => p.Name));

    static ProgramSpec Program(string name) => ProgramSpec.All.Single(p => p.Name == name);

    [Theory]
    [MemberData(nameof(Programs))]
    public void BuildsOnTheSdkAndRunsOnAspNetWithTheLibTorchBackendAsABuildArgument(string name)
    {
        var program = Program(name);
        var image = program.Dockerfile;
        var from = image.All("FROM").ToList();
        Assert.Equal(2, from.Count);
        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:", from[0]);
        Assert.StartsWith("mcr.microsoft.com/dotnet/aspnet:", from[1]);
        Assert.Contains(image.All("ARG"), a => a.StartsWith("LIBTORCH_BACKEND=cpu", StringComparison.Ordinal));
        var run = string.Join("\n", image.All("RUN"));
        Assert.Contains($"dotnet publish {program.ProjectPath}", run);
        Assert.Contains("-p:LibTorchBackend=${LIBTORCH_BACKEND}", run);
        Assert.True(File.Exists(Repository.PathOf(program.ProjectPath)), program.ProjectPath);
        var assembly = Path.GetFileNameWithoutExtension(program.ProjectPath);
        Assert.Equal(["dotnet", $"{assembly}.dll"], image.Entrypoint);
    }

    [Theory]
    [MemberData(nameof(Programs))]
    public void EnvironmentKeysExistAndTheModelItShipsIsInTheRepository(string name)
    {
        var program = Program(name);
        var image = program.Dockerfile;
        var problems = program.ProblemsWith(image.Environment, program.DockerfilePath);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        foreach (var copy in image.All("COPY").Where(c => c.StartsWith("models/", StringComparison.Ordinal)))
            Assert.True(File.Exists(Repository.PathOf(copy.Split(' ')[0])), $"{program.DockerfilePath}: COPY {copy}: no such file");
    }

    [Fact]
    public void TheLevelServiceImageExposesItsPortsAndChecksReadiness()
    {
        var image = ProgramSpec.LevelService.Dockerfile;
        int grpc = Ports.LevelService(new Dictionary<string, string>(), image);
        Assert.Contains(grpc, image.Exposed);
        Assert.Equal(["dotnet", "/probe/FractalMesh.HealthProbe.dll", "grpc", $"http://127.0.0.1:{grpc}", LevelServiceExtensions.ReadinessService], image.HealthCheck);
    }

    [Fact]
    public void TheGatewayImageListensOnEveryInterfaceOnTheExposedPorts()
    {
        var image = ProgramSpec.Gateway.Dockerfile;
        var none = new Dictionary<string, string>();
        int grpc = Ports.Gateway("GrpcUrl", none, image), rest = Ports.Gateway("RestUrl", none, image);
        Assert.Equal([grpc, rest], image.Exposed);
        Assert.Matches(new Regex(@"^http://\*:\d+$"), image.Environment["Gateway__GrpcUrl"]);
        Assert.Matches(new Regex(@"^http://\*:\d+$"), image.Environment["Gateway__RestUrl"]);
        Assert.Equal(["dotnet", "/probe/FractalMesh.HealthProbe.dll", "http", $"http://127.0.0.1:{rest}/healthz/ready"], image.HealthCheck);
    }

    [Fact]
    public void TheBuildContextLeavesOutBuildOutputsAndData()
    {
        var ignored = File.ReadAllLines(Repository.PathOf(".dockerignore")).Select(l => l.Trim()).ToHashSet();
        foreach (var entry in new[] { "**/bin/", "**/obj/", ".git/", "data/", "runs/" }) Assert.Contains(entry, ignored);
        Assert.DoesNotContain("models/", ignored);
    }
}
