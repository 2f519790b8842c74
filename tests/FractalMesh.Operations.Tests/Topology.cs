using FractalMesh.Model.Checkpoints;
using FractalMesh.Model.Config;

namespace FractalMesh.Operations.Tests;

/// <summary>
/// A level service as a deployment file configures it: the name callers reach it by (a compose service, a Kubernetes
/// Deployment behind its Service), its environment (deployment settings over the image's ENV) and its gRPC port.
/// </summary>
sealed record LevelServer(string Name, IReadOnlyDictionary<string, string> Environment, int Port)
{
    public int FirstLevel => int.Parse(Environment.GetValueOrDefault("Level__FirstLevel", "0"));

    /// <summary>The last level served, null for "to the bottom" (the pixel head included).</summary>
    public int? LastLevel => Environment.TryGetValue("Level__LastLevel", out var last) ? int.Parse(last) : null;

    /// <summary>Level__NextAddresses__0, __1, … in index order.</summary>
    public IReadOnlyList<string> NextAddresses => Topology.List(Environment, "Level__NextAddresses__");

    public (string Path, string? Preset) Model => (Environment.GetValueOrDefault("Level__Model", ""), Environment.GetValueOrDefault("Level__Preset"));
}

/// <summary>
/// The per-level topology every deployment file describes: one level service per level of the model (0 to the pixel head,
/// which is the model's level count), each calling the service of the next level, the last calling nobody, and a gateway
/// that holds no weights and sends every request to the level-0 service.
/// </summary>
static class Topology
{
    /// <summary>The values of KEY0, KEY1, … (an options array as environment variables) in index order.</summary>
    public static IReadOnlyList<string> List(IReadOnlyDictionary<string, string> environment, string prefix) =>
        environment.Where(e => e.Key.StartsWith(prefix, StringComparison.Ordinal) && int.TryParse(e.Key[prefix.Length..], out _))
            .OrderBy(e => int.Parse(e.Key[prefix.Length..])).Select(e => e.Value).ToList();

    /// <summary>
    /// The configuration of the model a deployment names: the preset of an official checkpoint (which the deployment
    /// mounts, so it is not here), else the FractalMesh checkpoint the image ships, found in the repository through the
    /// image's COPY instruction (<c>COPY models/x.safetensors /models/</c>: /models/x.safetensors is models/x.safetensors).
    /// </summary>
    public static FractalConfig ModelOf(string path, string? preset, Dockerfile image)
    {
        if (!string.IsNullOrEmpty(preset)) return Presets.Get(preset);
        foreach (var copy in image.All("COPY").Where(c => !c.StartsWith("--", StringComparison.Ordinal)))
        {
            var words = copy.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            string destination = words[^1];
            foreach (var source in words[..^1])
            {
                string inImage = destination.EndsWith('/') ? destination + System.IO.Path.GetFileName(source) : destination;
                if (inImage == path) return ModelCheckpoint.ReadConfig(Repository.PathOf(source));
            }
        }
        throw new Xunit.Sdk.XunitException($"{path}: neither a preset nor a checkpoint that {image.Path} copies into the image");
    }

    /// <summary>
    /// What is wrong with a deployment's chain of levels; empty when all is well. <paramref name="serverAt"/> answers which
    /// level service listens at a host and port of an address (null: none).
    /// </summary>
    public static IReadOnlyList<string> Problems(FractalConfig model, IReadOnlyList<LevelServer> servers,
        IReadOnlyDictionary<string, string> gateway, Func<string, int, LevelServer?> serverAt)
    {
        var problems = new List<string>();
        int pixelHead = model.Levels;
        if (servers.Count == 0) return ["no level service at all"];

        // Every level service and the gateway name the same model.
        var gatewayModel = (gateway.GetValueOrDefault("Gateway__ModelPath", ""), gateway.GetValueOrDefault("Gateway__Preset"));
        foreach (var server in servers.Where(s => s.Model != gatewayModel))
            problems.Add($"{server.Name} runs {server.Model}, the gateway describes {gatewayModel}");

        // One service per level, every level 0..pixel head served exactly once.
        foreach (var server in servers)
        {
            int last = server.LastLevel ?? pixelHead;
            if (server.FirstLevel > pixelHead || last > pixelHead)
                problems.Add($"{server.Name} serves levels {server.FirstLevel}..{last}, but the model has levels 0..{pixelHead} ({pixelHead} is the pixel head)");
            else if (last != server.FirstLevel)
                problems.Add($"{server.Name} serves levels {server.FirstLevel}..{last}: one service per level, so that each scales on its own");
        }
        for (int level = 0; level <= pixelHead; level++)
        {
            var serving = servers.Where(s => s.FirstLevel <= level && level <= (s.LastLevel ?? pixelHead)).Select(s => s.Name).ToList();
            if (serving.Count != 1)
                problems.Add($"level {level}{(level == pixelHead ? " (the pixel head)" : "")} is served by {serving.Count} services ({string.Join(", ", serving)}), not exactly one");
        }

        // Each service calls the one that serves the level after its last; the bottom calls nobody.
        foreach (var server in servers)
        {
            int last = server.LastLevel ?? pixelHead;
            if (last >= pixelHead)
            {
                if (server.NextAddresses.Count > 0)
                    problems.Add($"{server.Name} serves down to the pixel head but has Level__NextAddresses ({string.Join(", ", server.NextAddresses)})");
                continue;
            }
            if (server.NextAddresses.Count == 0)
                problems.Add($"{server.Name} stops at level {last} and has no Level__NextAddresses__0 for level {last + 1}");
            foreach (var address in server.NextAddresses)
                problems.AddRange(CallsLevel($"{server.Name}: Level__NextAddresses {address}", address, last + 1, serverAt));
        }

        // The gateway: distributed, no weights (every level remote), its level addresses name the level-0 service.
        var levelAddresses = List(gateway, "Gateway__LevelAddresses__");
        if (levelAddresses.Count == 0)
            problems.Add("the gateway has no Gateway__LevelAddresses__0: it would load the model and run every level itself (embedded mode)");
        int firstRemote = gateway.TryGetValue("Gateway__FirstRemoteLevel", out var f) ? int.Parse(f) : new FractalMesh.Gateway.GatewayOptions().FirstRemoteLevel;
        if (firstRemote != 0)
            problems.Add($"the gateway runs levels 0..{firstRemote - 1} itself (FirstRemoteLevel {firstRemote}): it would load weights; every level belongs in level services");
        foreach (var address in levelAddresses)
            problems.AddRange(CallsLevel($"the gateway: Gateway__LevelAddresses {address}", address, 0, serverAt));
        return problems;
    }

    static IEnumerable<string> CallsLevel(string who, string address, int level, Func<string, int, LevelServer?> serverAt)
    {
        var targets = Addresses.In(address).ToList();
        if (targets.Count != 1)
        {
            yield return $"{who} names no host:port";
            yield break;
        }
        var (host, port) = targets[0];
        var target = serverAt(host, port);
        if (target is null) yield return $"{who}: no level service listens at {host}:{port}";
        else if (target.FirstLevel != level) yield return $"{who} reaches {target.Name}, which serves from level {target.FirstLevel}, not level {level}";
    }
}
