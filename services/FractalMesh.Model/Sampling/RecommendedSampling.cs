using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace FractalMesh.Model.Sampling;

/// <summary>
/// The sampling settings a checkpoint's author found to draw its best samples, stored in the checkpoint's metadata under
/// <see cref="MetadataKey"/> (<c>fractalmesh export --recommend</c>). They are advice for people: the web page starts its
/// form from them and <c>generate</c> names them, while a request that leaves a setting out still gets the official
/// default, so an API call means the same on every model.
/// </summary>
/// <param name="Cfg">Guidance scale, 1..<see cref="SamplingOptions.MaxCfg"/>.</param>
/// <param name="CfgSchedule"><c>linear</c> (official) or <c>constant</c>.</param>
/// <param name="Temperature">Temperature, in (0, <see cref="SamplingOptions.MaxTemperature"/>].</param>
/// <param name="TemperatureSchedule"><c>constant</c> (official) or <c>linear</c>.</param>
/// <param name="Filter">
/// The low-probability filter in (0, 1] (official 1e-4; higher draws fewer stray pixels). Absent from entries written before
/// it existed, which therefore read as the official value.
/// </param>
public sealed record RecommendedSampling(float Cfg, string CfgSchedule, float Temperature, string TemperatureSchedule,
    float Filter = SamplingOptions.DefaultFilterThreshold)
{
    /// <summary>Metadata key of the settings (a JSON object with the five fields, camelCase).</summary>
    public const string MetadataKey = "recommended_sampling";

    static readonly string[] Schedules = ["linear", "constant"];
    const string Names = "names: cfg, schedule, temperature, temperature-schedule, filter";
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Whether the guidance grows linearly over level 0's steps.</summary>
    [JsonIgnore] public bool LinearCfg => CfgSchedule == "linear";

    /// <summary>Whether the temperature grows linearly from 1 over level 0's steps.</summary>
    [JsonIgnore] public bool LinearTemperature => TemperatureSchedule == "linear";

    /// <summary>The settings as <c>generate</c>'s options (those at generate's default left out).</summary>
    public string AsOptions() => string.Create(CultureInfo.InvariantCulture,
        $"--cfg {Cfg} --schedule {CfgSchedule} --temperature {Temperature}{(LinearTemperature ? " --temperature-schedule linear" : "")}" +
        $"{(Filter != SamplingOptions.DefaultFilterThreshold ? $" --filter {Filter}" : "")}");

    /// <summary>
    /// Parses <c>cfg=4,schedule=constant,temperature=1.2[,temperature-schedule=linear][,filter=0.001]</c> (the names of generate's
    /// options); a setting left out takes the official default. Throws <see cref="FormatException"/> naming the setting.
    /// </summary>
    public static RecommendedSampling Parse(string text)
    {
        float cfg = 1, temperature = 1, filter = SamplingOptions.DefaultFilterThreshold;
        string cfgSchedule = "linear", temperatureSchedule = "constant";
        var seen = new HashSet<string>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            var pair = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (pair.Length != 2 || pair[0].Length == 0)
                throw new FormatException($"'{part}' is not name=value ({Names})");
            if (!seen.Add(pair[0])) throw new FormatException($"{pair[0]} is given twice");
            switch (pair[0])
            {
                case "cfg": cfg = Number(pair[0], pair[1]); break;
                case "schedule": cfgSchedule = pair[1]; break;
                case "temperature": temperature = Number(pair[0], pair[1]); break;
                case "temperature-schedule": temperatureSchedule = pair[1]; break;
                case "filter": filter = Number(pair[0], pair[1]); break;
                default: throw new FormatException($"{pair[0]} is not a setting ({Names})");
            }
        }
        return new RecommendedSampling(cfg, cfgSchedule, temperature, temperatureSchedule, filter).Validated();
    }

    static float Number(string name, string value) =>
        float.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out float number)
            ? number
            : throw new FormatException($"{name}: '{value}' is not a number");

    /// <summary>These settings, or a <see cref="FormatException"/> naming the first one out of range.</summary>
    public RecommendedSampling Validated()
    {
        if (!float.IsFinite(Cfg) || Cfg < 1 || Cfg > SamplingOptions.MaxCfg)
            throw new FormatException(string.Create(CultureInfo.InvariantCulture, $"cfg: {Cfg} is outside 1..{SamplingOptions.MaxCfg}"));
        if (!Schedules.Contains(CfgSchedule)) throw new FormatException($"schedule: '{CfgSchedule}' is not linear or constant");
        if (!float.IsFinite(Temperature) || Temperature <= 0 || Temperature > SamplingOptions.MaxTemperature)
            throw new FormatException(string.Create(CultureInfo.InvariantCulture, $"temperature: {Temperature} is outside (0, {SamplingOptions.MaxTemperature}]"));
        if (!Schedules.Contains(TemperatureSchedule)) throw new FormatException($"temperature-schedule: '{TemperatureSchedule}' is not linear or constant");
        // 0 is not offered: the API reads a filter of 0 as "not given" (protobuf's default) and applies the official one.
        if (!float.IsFinite(Filter) || Filter <= 0 || Filter > 1)
            throw new FormatException(string.Create(CultureInfo.InvariantCulture, $"filter: {Filter} is outside (0, 1]"));
        return this;
    }

    /// <summary>The metadata value.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads a metadata value; throws <see cref="InvalidDataException"/> when it is malformed or out of range.</summary>
    public static RecommendedSampling FromJson(string json)
    {
        try
        {
            var settings = JsonSerializer.Deserialize<RecommendedSampling>(json, Json)
                ?? throw new InvalidDataException($"{MetadataKey} is null");
            if (settings.CfgSchedule is null || settings.TemperatureSchedule is null)
                throw new InvalidDataException($"{MetadataKey} lacks a schedule: {json}");
            return settings.Validated();
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            throw new InvalidDataException($"{MetadataKey}: {e.Message}", e);
        }
    }
}
