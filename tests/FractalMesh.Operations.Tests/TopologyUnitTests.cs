using FractalMesh.Model.Config;
using Xunit;

namespace FractalMesh.Operations.Tests;

/// <summary>
/// The chain check that the compose and Kubernetes tests apply, on a hand-made demo topology: it passes the right chain
/// and names each kind of break, so a deployment file with one cannot pass.
/// </summary>
public sealed class TopologyUnitTests
{
    const string Model = "/models/emoji32-demo.safetensors";
    static readonly FractalConfig Demo = Presets.Get("fractalmar_tiny_in32");   // two generator levels and the pixel head, as the demo model

    static Dictionary<string, string> Level(int first, int? last, string? next)
    {
        var env = new Dictionary<string, string> { ["Level__Model"] = Model, ["Level__FirstLevel"] = first.ToString() };
        if (last is { } l) env["Level__LastLevel"] = l.ToString();
        if (next is not null) env["Level__NextAddresses__0"] = next;
        return env;
    }

    static Dictionary<string, Dictionary<string, string>> Chain() => new()
    {
        ["level0"] = Level(0, 0, "dns:///level1:5101"),
        ["level1"] = Level(1, 1, "dns:///pixelhead:5101"),
        ["pixelhead"] = Level(2, null, null),
    };

    static Dictionary<string, string> Gateway() => new()
    {
        ["Gateway__ModelPath"] = Model, ["Gateway__LevelAddresses__0"] = "dns:///level0:5101",
    };

    static IReadOnlyList<string> Check(Dictionary<string, Dictionary<string, string>> levels, Dictionary<string, string> gateway)
    {
        var servers = levels.Select(l => new LevelServer(l.Key, l.Value, 5101)).ToList();
        return Topology.Problems(Demo, servers, gateway, (host, port) => servers.SingleOrDefault(s => s.Name == host && s.Port == port));
    }

    [Fact]
    public void TheDemoChainPasses() => Assert.Empty(Check(Chain(), Gateway()));

    [Fact]
    public void HttpEntriesForReplicasPassToo()
    {
        var levels = Chain();
        levels["level0"].Remove("Level__NextAddresses__0");
        levels["level0"]["Level__NextAddresses__0"] = "http://level1:5101";
        levels["level0"]["Level__NextAddresses__1"] = "http://level1:5101";
        Assert.Empty(Check(levels, Gateway()));
    }

    [Fact]
    public void AGatewayThatRunsLevelZeroItselfFails()
    {
        var gateway = Gateway();
        gateway["Gateway__FirstRemoteLevel"] = "1";
        gateway["Gateway__LevelAddresses__0"] = "dns:///level1:5101";
        var problems = Check(Chain(), gateway);
        Assert.Contains(problems, p => p.Contains("FirstRemoteLevel 1", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("reaches level1, which serves from level 1, not level 0", StringComparison.Ordinal));
    }

    [Fact]
    public void AnEmbeddedGatewayFails()
    {
        var gateway = Gateway();
        gateway.Remove("Gateway__LevelAddresses__0");
        Assert.Contains(Check(Chain(), gateway), p => p.Contains("embedded mode", StringComparison.Ordinal));
    }

    [Fact]
    public void ALevelThatSkipsTheNextOneFails()
    {
        var levels = Chain();
        levels["level0"]["Level__NextAddresses__0"] = "dns:///pixelhead:5101";
        Assert.Contains(Check(levels, Gateway()), p => p.StartsWith("level0", StringComparison.Ordinal) && p.Contains("not level 1", StringComparison.Ordinal));
    }

    [Fact]
    public void AWrongPortOrAnUnknownServiceFails()
    {
        var levels = Chain();
        levels["level1"]["Level__NextAddresses__0"] = "dns:///pixelhead:5102";
        Assert.Contains(Check(levels, Gateway()), p => p.Contains("no level service listens at pixelhead:5102", StringComparison.Ordinal));
        levels["level1"]["Level__NextAddresses__0"] = "dns:///pixel-head:5101";
        Assert.Contains(Check(levels, Gateway()), p => p.Contains("no level service listens at pixel-head:5101", StringComparison.Ordinal));
    }

    [Fact]
    public void AMissingLevelAMissingNextAddressAndACalledBottomFail()
    {
        var levels = Chain();
        levels.Remove("pixelhead");
        var problems = Check(levels, Gateway());
        Assert.Contains(problems, p => p.Contains("level 2 (the pixel head) is served by 0 services", StringComparison.Ordinal));

        levels = Chain();
        levels["level1"].Remove("Level__NextAddresses__0");
        Assert.Contains(Check(levels, Gateway()), p => p.Contains("level1 stops at level 1 and has no Level__NextAddresses__0", StringComparison.Ordinal));

        levels = Chain();
        levels["pixelhead"]["Level__NextAddresses__0"] = "dns:///level0:5101";
        Assert.Contains(Check(levels, Gateway()), p => p.Contains("pixelhead serves down to the pixel head but has Level__NextAddresses", StringComparison.Ordinal));
    }

    [Fact]
    public void AServiceOfTwoLevelsOrTwoServicesOfOneLevelFail()
    {
        var levels = Chain();
        levels.Remove("pixelhead");
        levels["level1"] = Level(1, null, null);   // the old topology: level 1 and the pixel head in one service
        Assert.Contains(Check(levels, Gateway()), p => p.Contains("level1 serves levels 1..2", StringComparison.Ordinal));

        levels = Chain();
        levels["level1b"] = Level(1, 1, "dns:///pixelhead:5101");
        Assert.Contains(Check(levels, Gateway()), p => p.Contains("level 1 is served by 2 services", StringComparison.Ordinal));
    }

    [Fact]
    public void AServiceOfAnotherModelFails()
    {
        var levels = Chain();
        levels["level1"]["Level__Model"] = "/models/other.safetensors";
        Assert.Contains(Check(levels, Gateway()), p => p.StartsWith("level1 runs (/models/other.safetensors", StringComparison.Ordinal));
    }
}
