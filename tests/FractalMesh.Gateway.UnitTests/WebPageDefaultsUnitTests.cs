using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using FractalMesh.Gateway.Validation;
using FractalMesh.Model.Sampling;
using FractalMesh.Protos.Api;
using Microsoft.Extensions.Options;
using Xunit;

namespace FractalMesh.Gateway.UnitTests;

/// <summary>
/// The web page's form starts at the API's defaults: a field left as it is asks for what a request without it gets.
/// (The page reads the filter default from its own field, so the field must be the API's.)
/// </summary>
public sealed class WebPageDefaultsUnitTests
{
    static readonly string Page = File.ReadAllText(Path.Combine(
        typeof(WebPageDefaultsUnitTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "RepositoryRoot").Value!,
        "gateway", "FractalMesh.Gateway", "wwwroot", "index.html"));

    static float InputValue(string id)
    {
        var match = Regex.Match(Page, $"<input id=\"{id}\"[^>]*\\svalue=\"([^\"]*)\"");
        Assert.True(match.Success, $"index.html has no <input id=\"{id}\"> with a value");
        return float.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>The option a select shows first, which is the one selected when none says selected.</summary>
    static string FirstOption(string id)
    {
        var match = Regex.Match(Page, $"<select id=\"{id}\"[^>]*>\\s*<option value=\"([^\"]*)\"");
        Assert.True(match.Success, $"index.html has no <select id=\"{id}\"> with options");
        Assert.DoesNotContain("selected", Regex.Match(Page, $"<select id=\"{id}\".*?</select>", RegexOptions.Singleline).Value);
        return match.Groups[1].Value;
    }

    [Fact]
    public void TheFormStartsAtTheApisSamplingDefaults()
    {
        // What the gateway makes of a request that gives no sampling parameters.
        var validator = new RequestValidator(new FakeGenerator(), Options.Create(new GatewayOptions()));
        var defaults = validator.Generate(new GenerateRequest { ClassLabels = { 3 } }).Options;
        Assert.Equal(SamplingOptions.DefaultFilterThreshold, defaults.FilterThreshold);
        Assert.Equal(defaults.FilterThreshold, InputValue("filter"));
        Assert.Equal(defaults.Cfg, InputValue("cfg"));
        Assert.Equal(defaults.Temperature, InputValue("temperature"));
        Assert.Equal(defaults.LinearCfg ? "linear" : "constant", FirstOption("cfg-schedule"));
        Assert.Equal(defaults.LinearTemperature ? "linear" : "constant", FirstOption("temperature-schedule"));
    }
}
