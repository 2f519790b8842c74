namespace FractalMesh.Data;

/// <summary>
/// The nine classes of the emoji dataset and how the source packages' categories map onto them.
/// </summary>
/// <remarks>
/// <c>@iconify-json/noto</c> 1.2.9, <c>@iconify-json/fluent-emoji-flat</c> 1.2.6 and <c>@iconify-json/twemoji</c> 1.2.5 group their icons
/// in <c>metadata.json</c> under exactly the nine Unicode emoji groups (the groups of Unicode's
/// <c>emoji-test.txt</c>, less "Component"), so the mapping is by name. Labels follow the Unicode group order.
/// A package category with any other name maps to nothing: its icons count as uncategorized (dropped from the
/// images, counted in the manifest, and the category's name is listed there) rather than being guessed into a class.
/// </remarks>
public static class EmojiCategories
{
    /// <summary>Class names in label order: label <c>i</c> is <c>ClassNames[i]</c>.</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
    [
        "Smileys & Emotion",
        "People & Body",
        "Animals & Nature",
        "Food & Drink",
        "Travel & Places",
        "Activities",
        "Objects",
        "Symbols",
        "Flags",
    ];

    /// <summary>The label of a package's category name, or <c>false</c> when it maps to no class.</summary>
    public static bool TryGetLabel(string packageCategory, out int label)
    {
        for (var i = 0; i < ClassNames.Count; i++)
        {
            // Case-insensitive so that a package that one day writes "Food & drink" still maps.
            if (string.Equals(ClassNames[i], packageCategory.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                label = i;
                return true;
            }
        }
        label = -1;
        return false;
    }
}
