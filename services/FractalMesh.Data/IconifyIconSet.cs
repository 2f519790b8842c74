using System.Text.Json;

namespace FractalMesh.Data;

/// <summary>One drawable icon of an Iconify icon set: its SVG body and its view box.</summary>
/// <param name="Name">The icon's name inside its set, e.g. <c>grinning-face</c>.</param>
/// <param name="Body">The SVG markup that goes inside the <c>&lt;svg&gt;</c> element.</param>
/// <param name="Left">The view box's left edge.</param>
/// <param name="Top">The view box's top edge.</param>
/// <param name="Width">The view box's width.</param>
/// <param name="Height">The view box's height.</param>
public sealed record IconifyIcon(string Name, string Body, double Left, double Top, double Width, double Height);

/// <summary>
/// An Iconify JSON icon set (<c>icons.json</c>) with the categories of its <c>metadata.json</c>.
/// </summary>
/// <remarks>
/// Only what the dataset needs is read: <c>prefix</c>, the set-wide <c>left</c>/<c>top</c>/<c>width</c>/<c>height</c>
/// defaults (Iconify's own defaults are 0, 0, 16, 16), and each entry of <c>icons</c>. Icons marked <c>hidden</c>
/// (kept by Iconify only so that old names still resolve) are skipped and counted, and so are <c>aliases</c>:
/// an alias is another name, or a flipped/rotated copy, of an icon that is already in <c>icons</c>.
/// </remarks>
public sealed class IconifyIconSet
{
    /// <summary>The set's prefix, e.g. <c>noto</c>.</summary>
    public required string Prefix { get; init; }

    /// <summary>The visible icons, sorted by name (ordinal).</summary>
    public required IReadOnlyList<IconifyIcon> Icons { get; init; }

    /// <summary>How many icons were skipped because they are marked <c>hidden</c>.</summary>
    public required int HiddenCount { get; init; }

    /// <summary>How many aliases the set has (none of them is used).</summary>
    public required int AliasCount { get; init; }

    /// <summary>The metadata's categories: category name → icon names, as the package lists them.</summary>
    public required IReadOnlyDictionary<string, IReadOnlyList<string>> Categories { get; init; }

    /// <summary>Parses <c>icons.json</c> and, when given, <c>metadata.json</c>.</summary>
    /// <param name="iconsJson">The bytes of <c>icons.json</c>.</param>
    /// <param name="metadataJson">The bytes of <c>metadata.json</c>, or empty when the package has none.</param>
    /// <param name="sourceDescription">Names the source in error messages (a path or a package id).</param>
    /// <exception cref="InvalidDataException">The JSON is malformed or lacks <c>prefix</c> or <c>icons</c>.</exception>
    public static IconifyIconSet Parse(ReadOnlyMemory<byte> iconsJson, ReadOnlyMemory<byte> metadataJson, string sourceDescription)
    {
        try
        {
            using var iconsDocument = JsonDocument.Parse(iconsJson);
            var root = iconsDocument.RootElement;
            var prefix = root.TryGetProperty("prefix", out var prefixElement) ? prefixElement.GetString() : null;
            if (string.IsNullOrWhiteSpace(prefix))
                throw new InvalidDataException($"{sourceDescription}: icons.json has no 'prefix'.");
            if (!root.TryGetProperty("icons", out var iconsElement) || iconsElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{sourceDescription}: icons.json has no 'icons' object.");

            var defaultLeft = ReadNumber(root, "left", 0);
            var defaultTop = ReadNumber(root, "top", 0);
            var defaultWidth = ReadNumber(root, "width", 16);
            var defaultHeight = ReadNumber(root, "height", 16);

            var icons = new List<IconifyIcon>();
            var hidden = 0;
            foreach (var entry in iconsElement.EnumerateObject())
            {
                var icon = entry.Value;
                if (icon.TryGetProperty("hidden", out var hiddenElement) && hiddenElement.ValueKind == JsonValueKind.True)
                {
                    hidden++;
                    continue;
                }
                var body = icon.TryGetProperty("body", out var bodyElement) ? bodyElement.GetString() : null;
                if (body is null)
                    throw new InvalidDataException($"{sourceDescription}: icon '{entry.Name}' has no 'body'.");
                icons.Add(new IconifyIcon(
                    entry.Name,
                    body,
                    ReadNumber(icon, "left", defaultLeft),
                    ReadNumber(icon, "top", defaultTop),
                    ReadNumber(icon, "width", defaultWidth),
                    ReadNumber(icon, "height", defaultHeight)));
            }
            icons.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));

            var aliasCount = root.TryGetProperty("aliases", out var aliases) && aliases.ValueKind == JsonValueKind.Object
                ? aliases.EnumerateObject().Count()
                : 0;

            return new IconifyIconSet
            {
                Prefix = prefix,
                Icons = icons,
                HiddenCount = hidden,
                AliasCount = aliasCount,
                Categories = ParseCategories(metadataJson, sourceDescription),
            };
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{sourceDescription}: icons.json or metadata.json is not valid JSON: {e.Message}", e);
        }
    }

    private static IReadOnlyDictionary<string, IReadOnlyList<string>> ParseCategories(ReadOnlyMemory<byte> metadataJson, string sourceDescription)
    {
        var categories = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        if (metadataJson.IsEmpty)
            return categories;
        using var document = JsonDocument.Parse(metadataJson);
        if (!document.RootElement.TryGetProperty("categories", out var categoriesElement))
            return categories;
        if (categoriesElement.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{sourceDescription}: metadata.json 'categories' is not an object.");
        foreach (var category in categoriesElement.EnumerateObject())
        {
            if (category.Value.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{sourceDescription}: metadata.json category '{category.Name}' is not a list.");
            categories[category.Name] = category.Value.EnumerateArray().Select(n => n.GetString() ?? "").ToList();
        }
        return categories;
    }

    private static double ReadNumber(JsonElement element, string property, double fallback) =>
        element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : fallback;
}
