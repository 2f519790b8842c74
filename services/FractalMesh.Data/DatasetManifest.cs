using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace FractalMesh.Data;

/// <summary>
/// <c>manifest.json</c>: what a dataset folder holds and how it was made. It has no timestamps or paths, so
/// building the same sources twice writes the same bytes.
/// </summary>
/// <param name="Dataset">The dataset's name, e.g. <c>emoji</c>.</param>
/// <param name="Format">The split files' format, <c>FMDS</c>.</param>
/// <param name="FormatVersion">The FMDS version.</param>
/// <param name="ImageHeight">Image height in pixels.</param>
/// <param name="ImageWidth">Image width in pixels.</param>
/// <param name="Channels">Channels per pixel (3).</param>
/// <param name="PixelLayout">How the pixels are laid out and drawn, in words.</param>
/// <param name="ClassNames">Class names in label order.</param>
/// <param name="Split">How images are assigned to train and test.</param>
/// <param name="Files">The split files.</param>
/// <param name="Counts">Images per class and split, in label order.</param>
/// <param name="Uncategorized">Icons that belong to no class.</param>
/// <param name="Skipped">Icons that could not be rendered, or rendered blank.</param>
/// <param name="Sources">The packages the icons came from.</param>
/// <param name="Renderer">The renderer and its version.</param>
public sealed record DatasetManifest(
    string Dataset,
    string Format,
    uint FormatVersion,
    int ImageHeight,
    int ImageWidth,
    int Channels,
    string PixelLayout,
    IReadOnlyList<string> ClassNames,
    SplitRule Split,
    IReadOnlyList<SplitFile> Files,
    IReadOnlyList<ClassCount> Counts,
    UncategorizedIcons Uncategorized,
    IReadOnlyList<string> Skipped,
    IReadOnlyList<SourcePackage> Sources,
    string Renderer)
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        // '\n' everywhere so the bytes do not depend on the OS; relaxed escaping keeps "Smileys & Emotion" readable.
        NewLine = "\n",
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>The manifest as JSON text, ending in a newline.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions) + "\n";

    /// <summary>Reads a manifest written by <see cref="ToJson"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not a manifest; the message names the path.</exception>
    public static DatasetManifest Load(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<DatasetManifest>(File.ReadAllText(path), JsonOptions)
                   ?? throw new InvalidDataException($"{path} is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a dataset manifest: {e.Message}", e);
        }
    }
}

/// <summary>How images are split between train and test.</summary>
/// <param name="Method">The rule, in words.</param>
/// <param name="Key">What is hashed.</param>
/// <param name="TestPerMille">Test when the hash value mod 1000 is below this.</param>
public sealed record SplitRule(string Method, string Key, int TestPerMille);

/// <summary>One split file.</summary>
/// <param name="Split"><c>train</c> or <c>test</c>.</param>
/// <param name="File">Its name in the dataset folder.</param>
/// <param name="Count">Images in it.</param>
/// <param name="Sha256">The file's SHA-256 in hex.</param>
public sealed record SplitFile(string Split, string File, int Count, string Sha256);

/// <summary>Images of one class in each split.</summary>
/// <param name="Label">The label.</param>
/// <param name="Name">The class name.</param>
/// <param name="Train">Images in train.</param>
/// <param name="Test">Images in test.</param>
public sealed record ClassCount(int Label, string Name, int Train, int Test);

/// <summary>Icons that no category of the package maps to a class.</summary>
/// <param name="Count">How many (over all packages).</param>
/// <param name="Policy">What was done with them.</param>
/// <param name="Icons">Their <c>prefix:name</c>s, sorted.</param>
public sealed record UncategorizedIcons(int Count, string Policy, IReadOnlyList<string> Icons);

/// <summary>One source package.</summary>
/// <param name="Package">The npm package name.</param>
/// <param name="Version">Its version.</param>
/// <param name="License">Its SPDX licence.</param>
/// <param name="Prefix">The Iconify prefix of its icons.</param>
/// <param name="TarballIntegrity">npm's <c>sha512-…</c> of the tarball; <c>null</c> when built from a folder.</param>
/// <param name="TarballShasum">The tarball's SHA-1 hex; <c>null</c> when built from a folder.</param>
/// <param name="IconsJsonSha256">SHA-256 hex of its <c>icons.json</c>, whichever way it was read.</param>
/// <param name="Icons">Visible icons in <c>icons.json</c>.</param>
/// <param name="HiddenSkipped">Icons skipped as hidden.</param>
/// <param name="AliasesSkipped">Aliases skipped.</param>
/// <param name="Uncategorized">Visible icons in no mapped category.</param>
/// <param name="UnmappedCategories">Category names of the package that map to no class.</param>
/// <param name="Used">Icons that made it into the dataset.</param>
public sealed record SourcePackage(
    string Package,
    string Version,
    string License,
    string Prefix,
    string? TarballIntegrity,
    string? TarballShasum,
    string IconsJsonSha256,
    int Icons,
    int HiddenSkipped,
    int AliasesSkipped,
    int Uncategorized,
    IReadOnlyList<string> UnmappedCategories,
    int Used);
