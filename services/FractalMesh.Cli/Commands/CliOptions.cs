using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace FractalMesh.Cli.Commands;

/// <summary>
/// Typed options with the command line's own messages: a bad value is a parse error naming the option and the accepted
/// range (<c>--cfg: 'abc' is not a number in 1..50</c>), so it exits 2 before any work starts.
/// </summary>
static class CliOptions
{
    public static Option<string?> Text(string name, string helpName, string description) =>
        new(name) { HelpName = helpName, Description = description };

    public static Option<string> Text(string name, string helpName, string description, string fallback) =>
        new(name) { HelpName = helpName, Description = description, DefaultValueFactory = _ => fallback };

    public static Option<string> Required(string name, string helpName, string description) =>
        new(name) { HelpName = helpName, Description = description, Required = true };

    public static Option<bool> Flag(string name, string description) => new(name) { Description = description };

    public static Option<int> Int(string name, string description, int fallback, int min = int.MinValue, int max = int.MaxValue) =>
        new(name)
        {
            HelpName = "N", Description = description, DefaultValueFactory = _ => fallback,
            CustomParser = r => Parse(r, name, min, max, int.MinValue, int.MaxValue, "an integer", TryInt),
        };

    public static Option<int?> OptionalInt(string name, string description, int min = int.MinValue, int max = int.MaxValue) =>
        new(name)
        {
            HelpName = "N", Description = description,
            CustomParser = r => (int?)Parse(r, name, min, max, int.MinValue, int.MaxValue, "an integer", TryInt),
        };

    public static Option<long> Long(string name, string description, long fallback, long min = long.MinValue, long max = long.MaxValue) =>
        new(name)
        {
            HelpName = "N", Description = description, DefaultValueFactory = _ => fallback,
            CustomParser = r => Parse(r, name, min, max, long.MinValue, long.MaxValue, "an integer", TryLong),
        };

    public static Option<double> Number(string name, string description, double fallback, double min = double.MinValue, double max = double.MaxValue) =>
        new(name)
        {
            HelpName = "X", Description = description, DefaultValueFactory = _ => fallback,
            CustomParser = r => Parse(r, name, min, max, double.MinValue, double.MaxValue, "a number", TryNumber),
        };

    public static Option<double?> OptionalNumber(string name, string description, double min = double.MinValue, double max = double.MaxValue) =>
        new(name)
        {
            HelpName = "X", Description = description,
            CustomParser = r => (double?)Parse(r, name, min, max, double.MinValue, double.MaxValue, "a number", TryNumber),
        };

    /// <summary>
    /// A comma-separated list of integers in [min, max] (<c>--iters 16,8</c>). Absent and without a default it reads as an
    /// empty array (the parser's rule for collections); <see cref="ListOrNull"/> turns that into null.
    /// </summary>
    public static Option<int[]?> IntList(string name, string helpName, string description, int min, int max, int[]? fallback = null)
    {
        var option = new Option<int[]?>(name)
        {
            HelpName = helpName,
            Description = description,
            CustomParser = r =>
            {
                string text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                var parts = text.Split(',', StringSplitOptions.TrimEntries);
                var values = new int[parts.Length];
                for (int i = 0; i < parts.Length; i++)
                    if (!TryInt(parts[i], out values[i]) || values[i] < min || values[i] > max)
                    {
                        r.AddError($"{name}: '{text}' is not a comma-separated list of integers{Range(min, max, int.MinValue, int.MaxValue)}");
                        return null;
                    }
                return values;
            },
        };
        if (fallback is not null) option.DefaultValueFactory = _ => fallback;
        return option;
    }

    /// <summary>The list given, or null when the option was absent.</summary>
    public static int[]? ListOrNull(this ParseResult result, Option<int[]?> option) => result.GetValue(option) is { Length: > 0 } values ? values : null;

    /// <summary>One of <paramref name="values"/>, compared exactly.</summary>
    public static Option<string> Choice(string name, string description, string fallback, params string[] values) =>
        new(name)
        {
            HelpName = string.Join('|', values), Description = description, DefaultValueFactory = _ => fallback,
            CustomParser = r =>
            {
                string text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                if (values.Contains(text)) return text;
                r.AddError($"{name}: '{text}' is not {string.Join(" or ", values)}");
                return fallback;
            },
        };

    delegate bool TryParse<T>(string text, out T value);

    static bool TryInt(string text, out int value) => int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out value);
    static bool TryLong(string text, out long value) => long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out value);
    static bool TryNumber(string text, out double value) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);

    static T Parse<T>(ArgumentResult r, string name, T min, T max, T lowest, T highest, string what, TryParse<T> tryParse)
        where T : IComparable<T>, IEquatable<T>, IFormattable
    {
        string text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
        if (tryParse(text, out T value) && value.CompareTo(min) >= 0 && value.CompareTo(max) <= 0) return value;
        r.AddError($"{name}: '{text}' is not {what}{Range(min, max, lowest, highest)}");
        return min;
    }

    static string Range<T>(T min, T max, T lowest, T highest) where T : IEquatable<T>, IFormattable
    {
        string F(T v) => v.ToString(null, CultureInfo.InvariantCulture);
        return (min.Equals(lowest), max.Equals(highest)) switch
        {
            (true, true) => "",
            (false, true) => $" of at least {F(min)}",
            (true, false) => $" of at most {F(max)}",
            _ => $" in {F(min)}..{F(max)}",
        };
    }
}
