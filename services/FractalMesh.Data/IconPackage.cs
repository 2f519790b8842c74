using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;

namespace FractalMesh.Data;

/// <summary>An npm package to fetch, pinned to a version.</summary>
/// <param name="Name">The package name, e.g. <c>@iconify-json/noto</c>.</param>
/// <param name="Version">The exact version.</param>
/// <param name="ExpectedIntegrity">
/// The registry's <c>dist.integrity</c> (<c>sha512-…</c>) for this version, checked against the tarball; <c>null</c> skips the check.
/// </param>
public sealed record NpmPackageRef(string Name, string Version, string? ExpectedIntegrity = null)
{
    /// <summary>
    /// The three emoji icon sets: Fluent Emoji Flat and Noto at the versions the dataset was first built from, and
    /// Twemoji, added because it is the only one of the three with the country flags (Fluent Emoji and Iconify's Noto
    /// set have a handful of flag emoji, too few for a class).
    /// </summary>
    /// <remarks>Pinned so that every build reads the same artwork; the integrity strings are npm's, so a damaged cache is caught.</remarks>
    public static IReadOnlyList<NpmPackageRef> EmojiDefaults { get; } =
    [
        new("@iconify-json/fluent-emoji-flat", "1.2.6",
            "sha512-RY47RgPb47fYUiyrA64sIOL0+UU02s29sXpNBbIQRBUlPlfNFTKUmZDERGuxDs/7yNGWqQYvuaSYM1M4fRXlUw=="),
        new("@iconify-json/noto", "1.2.9",
            "sha512-DQiuXENbun41ch+XPSV55H9FaWKpHTyz46YIKtSaKYD4fIDDzL1tR6H4np/T38jfrTAeI3rcKF0mqHYeZVAuaw=="),
        new("@iconify-json/twemoji", "1.2.5",
            "sha512-uKpuIEV0v6K5BW3Mjdyl+XKFVAbbcPxAgifKvEMtZoUZB5+YiY5zaMm2uNNCxyXzAWU9yNLlj41WU6/mvgALsw=="),
    ];

    /// <summary>The file name <c>npm pack</c> gives the tarball: <c>@scope/name</c> becomes <c>scope-name-VERSION.tgz</c>.</summary>
    public string TarballFileName => $"{Name.TrimStart('@').Replace('/', '-')}-{Version}.tgz";
}

/// <summary>The files of one icon package that the dataset reads, with where they came from.</summary>
public sealed class IconPackage
{
    /// <summary>The npm package name from <c>package.json</c>.</summary>
    public required string Name { get; init; }

    /// <summary>The version from <c>package.json</c>.</summary>
    public required string Version { get; init; }

    /// <summary>The SPDX licence from <c>package.json</c>.</summary>
    public required string License { get; init; }

    /// <summary>The tarball's <c>sha512-…</c> integrity (npm's format), or <c>null</c> when read from a folder.</summary>
    public string? TarballIntegrity { get; init; }

    /// <summary>The tarball's SHA-1 in hex (npm's <c>shasum</c>), or <c>null</c> when read from a folder.</summary>
    public string? TarballShasum { get; init; }

    /// <summary>The bytes of <c>icons.json</c>.</summary>
    public required ReadOnlyMemory<byte> IconsJson { get; init; }

    /// <summary>The bytes of <c>metadata.json</c>, empty when the package has none.</summary>
    public required ReadOnlyMemory<byte> MetadataJson { get; init; }

    /// <summary>Reads an extracted package folder (one holding <c>package.json</c>, <c>icons.json</c> and <c>metadata.json</c>).</summary>
    /// <exception cref="FileNotFoundException"><c>icons.json</c> or <c>package.json</c> is missing.</exception>
    public static IconPackage FromFolder(string folder)
    {
        var packageJsonPath = Path.Combine(folder, "package.json");
        var iconsJsonPath = Path.Combine(folder, "icons.json");
        if (!File.Exists(iconsJsonPath))
            throw new FileNotFoundException($"No icons.json in the package folder {folder}.", iconsJsonPath);
        if (!File.Exists(packageJsonPath))
            throw new FileNotFoundException($"No package.json in the package folder {folder}.", packageJsonPath);
        var metadataJsonPath = Path.Combine(folder, "metadata.json");
        return FromFiles(
            File.ReadAllBytes(packageJsonPath),
            File.ReadAllBytes(iconsJsonPath),
            File.Exists(metadataJsonPath) ? File.ReadAllBytes(metadataJsonPath) : [],
            integrity: null, shasum: null, folder);
    }

    /// <summary>Reads <c>package.json</c>, <c>icons.json</c> and <c>metadata.json</c> straight out of an npm tarball.</summary>
    /// <exception cref="InvalidDataException">The file is not a gzip'd tar, or lacks the files.</exception>
    public static IconPackage FromTarball(string tarballPath)
    {
        var tarballBytes = File.ReadAllBytes(tarballPath);
        var wanted = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        try
        {
            using var gzip = new GZipStream(new MemoryStream(tarballBytes), CompressionMode.Decompress);
            using var tar = new TarReader(gzip);
            while (tar.GetNextEntry() is { } entry)
            {
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || entry.DataStream is null)
                    continue;
                // npm puts everything under one top folder (normally "package/"); only its direct files matter,
                // and reading them into memory means no path from the archive ever reaches the file system.
                var parts = entry.Name.Split('/', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length != 2 || parts[1] is not ("package.json" or "icons.json" or "metadata.json"))
                    continue;
                using var buffer = new MemoryStream();
                entry.DataStream.CopyTo(buffer);
                wanted[parts[1]] = buffer.ToArray();
            }
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException)
        {
            throw new InvalidDataException($"{tarballPath} is not a readable npm tarball: {e.Message}", e);
        }
        if (!wanted.TryGetValue("package.json", out var packageJson) || !wanted.TryGetValue("icons.json", out var iconsJson))
            throw new InvalidDataException($"{tarballPath} has no package/package.json or package/icons.json.");
        return FromFiles(packageJson, iconsJson, wanted.GetValueOrDefault("metadata.json") ?? [],
            NpmIntegrity(tarballBytes), Convert.ToHexStringLower(SHA1.HashData(tarballBytes)), tarballPath);
    }

    /// <summary>npm's integrity string of some bytes: <c>sha512-</c> and the base64 SHA-512.</summary>
    public static string NpmIntegrity(ReadOnlySpan<byte> bytes) => "sha512-" + Convert.ToBase64String(SHA512.HashData(bytes));

    private static IconPackage FromFiles(byte[] packageJson, byte[] iconsJson, byte[] metadataJson, string? integrity, string? shasum, string source)
    {
        string? name, version, license;
        try
        {
            using var document = JsonDocument.Parse(packageJson);
            var root = document.RootElement;
            name = root.TryGetProperty("name", out var n) ? n.GetString() : null;
            version = root.TryGetProperty("version", out var v) ? v.GetString() : null;
            license = root.TryGetProperty("license", out var l) && l.ValueKind == JsonValueKind.String ? l.GetString() : null;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: package.json is not valid JSON: {e.Message}", e);
        }
        if (string.IsNullOrWhiteSpace(name) || string.IsNullOrWhiteSpace(version))
            throw new InvalidDataException($"{source}: package.json lacks 'name' or 'version'.");
        return new IconPackage
        {
            Name = name,
            Version = version,
            License = license ?? "UNKNOWN",
            TarballIntegrity = integrity,
            TarballShasum = shasum,
            IconsJson = iconsJson,
            MetadataJson = metadataJson,
        };
    }
}

/// <summary>Fetches npm tarballs with <c>npm pack</c> into a cache folder, reusing what is already there.</summary>
public static class NpmTarballCache
{
    /// <summary>The default cache: <c>$XDG_CACHE_HOME/fractalmesh/npm</c>, else <c>~/.cache/fractalmesh/npm</c>.</summary>
    public static string DefaultDirectory
    {
        get
        {
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var root = string.IsNullOrEmpty(xdg)
                ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache")
                : xdg;
            return Path.Combine(root, "fractalmesh", "npm");
        }
    }

    /// <summary>
    /// Returns the path of the package's tarball in <paramref name="cacheDirectory"/>, running
    /// <c>npm pack NAME@VERSION --pack-destination CACHE</c> when it is not there yet (or fails its integrity check).
    /// </summary>
    /// <exception cref="InvalidOperationException">npm is missing or fails.</exception>
    /// <exception cref="InvalidDataException">The tarball's integrity differs from the pinned one.</exception>
    public static async Task<string> FetchAsync(NpmPackageRef package, string cacheDirectory, Action<string>? log, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(cacheDirectory);
        var tarballPath = Path.Combine(cacheDirectory, package.TarballFileName);
        if (File.Exists(tarballPath) && HasExpectedIntegrity(package, tarballPath))
        {
            log?.Invoke($"cached  {package.Name}@{package.Version} ({tarballPath})");
            return tarballPath;
        }

        log?.Invoke($"npm pack {package.Name}@{package.Version}");
        var start = new ProcessStartInfo("npm")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "pack", $"{package.Name}@{package.Version}", "--pack-destination", cacheDirectory, "--json", "--silent" })
            start.ArgumentList.Add(argument);

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("npm did not start.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException(
                $"Could not run npm to fetch {package.Name}@{package.Version} ({e.Message}); install Node.js/npm or build from extracted folders.", e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            if (process.ExitCode != 0)
                throw new InvalidOperationException(
                    $"npm pack {package.Name}@{package.Version} failed with exit code {process.ExitCode}: {(await stderr).Trim()}");
            _ = await stdout;
        }
        if (!File.Exists(tarballPath))
            throw new InvalidOperationException($"npm pack {package.Name}@{package.Version} succeeded but {tarballPath} is not there.");
        if (!HasExpectedIntegrity(package, tarballPath))
            throw new InvalidDataException(
                $"{tarballPath}: integrity {IconPackage.NpmIntegrity(File.ReadAllBytes(tarballPath))} differs from the pinned {package.ExpectedIntegrity}.");
        return tarballPath;
    }

    private static bool HasExpectedIntegrity(NpmPackageRef package, string tarballPath) =>
        package.ExpectedIntegrity is null
        || string.Equals(IconPackage.NpmIntegrity(File.ReadAllBytes(tarballPath)), package.ExpectedIntegrity, StringComparison.Ordinal);
}
