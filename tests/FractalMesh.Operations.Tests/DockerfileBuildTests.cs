using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Xunit;

namespace FractalMesh.Operations.Tests;

/// <summary>
/// Each image built and started without a Docker engine (this machine has only the client), by following its Dockerfile:
/// the build stage's COPY lines fill a fresh context from the repository (less what .dockerignore leaves out), its RUN
/// command runs there as on the SDK image (ARG defaults substituted, the cache mount dropped: the host's package cache is
/// the one the mount would hold), the runtime stage is laid out from its own COPY lines, and its ENTRYPOINT starts in its
/// WORKDIR with its ENV until its HEALTHCHECK command passes. The images' absolute paths lie under a scratch folder, one
/// per stage. What it catches that <see cref="DockerfileUnitTests"/> cannot: a file the context or a COPY leaves out, a
/// publish that fails from a clean tree, an output that does not start or never becomes ready. What it cannot catch: the
/// base images' own differences from this machine (their libstdc++, user, installed packages).
/// </summary>
public sealed partial class DockerfileBuildTests : IDisposable
{
    readonly string scratch = Directory.CreateTempSubdirectory("fractalmesh-image-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(scratch, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    public static TheoryData<string> Programs => DockerfileUnitTests.Programs;

    [Theory]
    [MemberData(nameof(Programs))]
    public async Task TheImageBuildsFromItsContextAndBecomesReady(string name)
    {
        var image = ProgramSpec.All.Single(p => p.Name == name).Dockerfile;
        var ignored = DockerIgnore.Load(Repository.PathOf(".dockerignore"));
        var arguments = new Dictionary<string, string>();
        var workdir = new Dictionary<string, string>();
        var environment = new Dictionary<string, string>();
        string? stage = null;
        string[] entrypoint = [], healthCheck = [];
        var exposed = new List<string>();
        foreach (var (instruction, raw) in image.Instructions)
        {
            string args = Substitute(raw, arguments);
            switch (instruction)
            {
                case "ARG":
                    int equals = args.IndexOf('=');
                    if (equals > 0) arguments[args[..equals]] = args[(equals + 1)..];
                    break;
                case "FROM":
                    var from = args.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    stage = from.Length == 3 && from[1].Equals("AS", StringComparison.OrdinalIgnoreCase) ? from[2] : $"stage{workdir.Count}";
                    workdir[stage] = "/";
                    break;
                case "WORKDIR":
                    workdir[stage!] = args.StartsWith('/') ? args : Path.Combine(workdir[stage!], args);
                    Directory.CreateDirectory(Map(stage!, workdir[stage!]));
                    break;
                case "COPY":
                    Copy(args, stage!, workdir[stage!], ignored);
                    break;
                case "RUN":
                    string command = MountOption().Replace(args, "").Trim();
                    var (code, output) = await RunAsync("bash", ["-c", MapPaths(command, stage!)], Map(stage!, workdir[stage!]), TimeSpan.FromMinutes(15));
                    Assert.True(code == 0, $"{image.Path}: RUN failed ({code}):\n{Tail(output)}");
                    break;
                case "ENV":
                    foreach (var (k, v) in Dockerfile.EnvironmentPairs(args)) environment[k] = MapPaths(v, stage!);
                    break;
                case "ENTRYPOINT":
                    entrypoint = [.. image.Entrypoint.Select(word => MapPaths(word, stage!))];
                    break;
                case "HEALTHCHECK":
                    healthCheck = [.. image.HealthCheck.Select(word => MapPaths(word, stage!))];
                    break;
                case "EXPOSE":
                    exposed.AddRange(args.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('/')[0]));
                    break;
            }
        }
        Assert.NotEmpty(entrypoint);
        Assert.NotEmpty(healthCheck);
        // A container has its ports to itself; here every port the image exposes moves to a free one, in its ENV and its
        // health check alike, so that nothing else on this machine (a developer's compose stack) can answer the probe.
        var ports = exposed.Distinct().ToDictionary(p => p, _ => TestPaths.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture));
        string MovePorts(string text) => PortNumber().Replace(text, m => ports.GetValueOrDefault(m.Value, m.Value));
        foreach (var key in environment.Keys.ToArray()) environment[key] = MovePorts(environment[key]);
        healthCheck = [.. healthCheck.Select(MovePorts)];
        var probedPorts = healthCheck.SelectMany(word => PortNumber().Matches(word).Select(m => m.Value)).ToHashSet();
        Assert.All(ports.Keys, port => Assert.DoesNotContain(port, probedPorts));

        // The runtime stage's program, started as the container would start it, must become ready by its own health check.
        var start = new ProcessStartInfo(entrypoint[0]) { WorkingDirectory = Map(stage!, workdir[stage!]), RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var word in entrypoint[1..]) start.ArgumentList.Add(word);
        foreach (var (k, v) in environment) start.Environment[k] = v;
        var log = new StringBuilder();
        using var program = Process.Start(start)!;
        program.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        program.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        program.BeginOutputReadLine();
        program.BeginErrorReadLine();
        try
        {
            var deadline = Stopwatch.StartNew();
            int health = -1;
            string probed = "";
            while (deadline.Elapsed < TimeSpan.FromMinutes(4) && !program.HasExited)
            {
                (health, probed) = await RunAsync(healthCheck[0], healthCheck[1..], Map(stage!, "/"), TimeSpan.FromSeconds(30));
                if (health == 0) { Assert.False(program.HasExited, $"{image.Path}: the program exited, yet something answered its health check"); break; }
                await Task.Delay(TimeSpan.FromSeconds(2));
            }
            string logged;
            lock (log) logged = log.ToString();
            Assert.True(health == 0, $"{image.Path}: the health check never passed (last: {health} {probed.Trim()}; exited: {program.HasExited}):\n{Tail(logged)}");
        }
        finally
        {
            if (!program.HasExited) program.Kill(entireProcessTree: true);
            await program.WaitForExitAsync();
        }
    }

    /// <summary>Where an image path of a stage's file system lies on this machine.</summary>
    string Map(string stage, string imagePath) => Path.Combine(scratch, stage, imagePath.TrimStart('/'));

    /// <summary>Every word that is an absolute path (a whole word, or the value after <c>=</c>) moved under the stage's folder.</summary>
    string MapPaths(string text, string stage) => AbsolutePath().Replace(text, m => m.Groups[1].Value + Map(stage, m.Groups[2].Value));

    /// <summary><c>COPY [--from=STAGE] SRC... DEST</c>: from the repository (the build context) or another stage's files.</summary>
    void Copy(string args, string stage, string workdir, DockerIgnore ignored)
    {
        var words = args.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        string? fromStage = words.FirstOrDefault(w => w.StartsWith("--from=", StringComparison.Ordinal))?["--from=".Length..];
        var paths = words.Where(w => !w.StartsWith("--", StringComparison.Ordinal)).ToArray();
        string destination = paths[^1];
        string target = Map(stage, destination.StartsWith('/') ? destination : Path.Combine(workdir, destination));
        bool intoFolder = destination.EndsWith('/') || destination is "." or "./" || paths.Length > 2;
        foreach (var source in paths[..^1])
        {
            string from = fromStage is null ? Repository.PathOf(source.TrimEnd('/')) : Map(fromStage, source);
            Assert.True(File.Exists(from) || Directory.Exists(from), $"COPY {source}: not found in {(fromStage is null ? "the build context" : $"stage {fromStage}")}");
            if (fromStage is null && source.TrimEnd('/') is not ("." or "") && LeftOutOfContext(source.TrimEnd('/'), Directory.Exists(from), ignored))
                Assert.Fail($"COPY {source}: .dockerignore leaves it out of the build context");
            if (Directory.Exists(from))
                CopyFolder(from, target, fromStage is null ? source.TrimEnd('/') : null, ignored);
            else
            {
                string file = intoFolder ? Path.Combine(target, Path.GetFileName(from)) : target;
                Directory.CreateDirectory(Path.GetDirectoryName(file)!);
                File.Copy(from, file, overwrite: true);
            }
        }
    }

    /// <summary>Whether .dockerignore excludes a path COPY names, or a folder it lies in (Docker leaves out a folder's contents with it).</summary>
    static bool LeftOutOfContext(string relative, bool isFolder, DockerIgnore ignored)
    {
        var parts = relative.Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (int i = 1; i <= parts.Length; i++)
            if (ignored.Excludes(string.Join('/', parts[..i]), i < parts.Length || isFolder)) return true;
        return false;
    }

    /// <summary>A folder's contents (not the folder itself, as COPY does); <paramref name="contextPath"/> set: what .dockerignore excludes stays out.</summary>
    static void CopyFolder(string from, string to, string? contextPath, DockerIgnore ignored)
    {
        Directory.CreateDirectory(to);
        foreach (var entry in new DirectoryInfo(from).EnumerateFileSystemInfos())
        {
            string? relative = contextPath is null ? null : $"{contextPath}/{entry.Name}";
            if (relative is not null && ignored.Excludes(relative, entry is DirectoryInfo)) continue;
            if (entry is DirectoryInfo folder) CopyFolder(folder.FullName, Path.Combine(to, entry.Name), relative, ignored);
            else File.Copy(entry.FullName, Path.Combine(to, entry.Name), overwrite: true);
        }
    }

    static string Substitute(string text, IReadOnlyDictionary<string, string> arguments) =>
        ArgumentReference().Replace(text, m => arguments.TryGetValue(m.Groups[1].Value, out var v) ? v : m.Value);

    static async Task<(int Code, string Output)> RunAsync(string file, IEnumerable<string> args, string directory, TimeSpan limit)
    {
        var start = new ProcessStartInfo(file) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(limit);
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            return (-1, $"timed out after {limit}\n{await stdout}{await stderr}");
        }
        return (process.ExitCode, await stdout + await stderr);
    }

    static string Tail(string text) => text.Length <= 4000 ? text : text[^4000..];

    /// <summary>A whole number of 2 to 5 digits (a port), not part of a longer number or a version such as 10.0.</summary>
    [GeneratedRegex(@"(?<![\d.])\d{2,5}(?![\d.])")]
    private static partial Regex PortNumber();

    [GeneratedRegex(@"--mount=\S+")]
    private static partial Regex MountOption();

    [GeneratedRegex(@"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")]
    private static partial Regex ArgumentReference();

    [GeneratedRegex(@"(^|[\s=""])(/[A-Za-z][^\s""]*)")]
    private static partial Regex AbsolutePath();
}

/// <summary>The patterns of a .dockerignore: <c>**/</c> matches any folders, <c>*</c> any name part, a trailing <c>/</c> folders only.</summary>
sealed class DockerIgnore(IReadOnlyList<(Regex Pattern, bool FoldersOnly)> patterns)
{
    public static DockerIgnore Load(string path) => new(File.ReadAllLines(path)
        .Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))
        .Select(l => (new Regex("^" + Regex.Escape(l.TrimEnd('/')).Replace(@"\*\*/", "(.*/)?").Replace(@"\*", "[^/]*") + "$"), l.EndsWith('/')))
        .ToList());

    public bool Excludes(string relative, bool isFolder) => patterns.Any(p => (isFolder || !p.FoldersOnly) && p.Pattern.IsMatch(relative));
}
