using System.Diagnostics;

namespace FractalMesh.Operations.Tests;

/// <summary>
/// The secrets deploy/make-secrets.sh writes (deploy/README.md, Security), made once into a temporary folder, so that the
/// keys docker compose and the Kubernetes Secrets hand the programs are checked like any other configuration.
/// </summary>
static class GeneratedSecrets
{
    public const string Script = "deploy/make-secrets.sh";

    /// <summary>The Kubernetes Secrets the manifests read, by name, and the file of the script each is created from.</summary>
    public static readonly IReadOnlyDictionary<string, string> KubernetesSecretFiles = new Dictionary<string, string>
    {
        ["fractalmesh-gateway-secrets"] = "gateway.env",
        ["fractalmesh-level-secrets"] = "level.env",
    };

    static readonly Lazy<string> Folder = new(() =>
    {
        string folder = Path.Combine(Directory.CreateTempSubdirectory("fractalmesh-secrets-").FullName, "secrets");
        var start = new ProcessStartInfo("bash", [Repository.PathOf(Script), folder, "ops:admin", "alice:user"])
        { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(start)!;
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{Script} exited {process.ExitCode}: {error}");
        return folder;
    });

    /// <summary>The generated file's KEY=VALUE lines (what docker compose's env_file and kubectl's --from-env-file read).</summary>
    public static Dictionary<string, string> Read(string file) => File.ReadAllLines(Path.Combine(Folder.Value, file))
        .Where(l => l.Length > 0 && !l.StartsWith('#'))
        .Select(l => l.Split('=', 2))
        .ToDictionary(p => p[0], p => p[1]);

    /// <summary>The generated files' permissions: the folder and each file readable by their owner only.</summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public static UnixFileMode ModeOf(string file) => File.GetUnixFileMode(Path.Combine(Folder.Value, file));
}
