using System.ComponentModel.DataAnnotations;
using System.Reflection;
using FractalMesh.Gateway;
using FractalMesh.Gateway.Security;
using FractalMesh.LevelService;
using FractalMesh.Observability;
using Microsoft.Extensions.Configuration;

namespace FractalMesh.Operations.Tests;

/// <summary>
/// A program the deployment files run: its image, its Dockerfile, and the configuration sections it binds (section name →
/// options class), so that every key a file sets can be checked against the code by reflection.
/// </summary>
sealed record ProgramSpec(string Name, string Image, string DockerfilePath, string ProjectPath, IReadOnlyDictionary<string, Type> Sections)
{
    public Dockerfile Dockerfile => Dockerfile.Load(DockerfilePath);

    public static readonly ProgramSpec LevelService = new("level service", "fractalmesh/level-service", "deploy/level-service.Dockerfile",
        "services/FractalMesh.LevelService/FractalMesh.LevelService.csproj", SectionsOf(typeof(LevelOptions).Assembly,
            new Dictionary<string, Type> { [LevelOptions.Section] = typeof(LevelOptions) }));

    public static readonly ProgramSpec Gateway = new("gateway", "fractalmesh/gateway", "deploy/gateway.Dockerfile",
        "gateway/FractalMesh.Gateway/FractalMesh.Gateway.csproj", SectionsOf(typeof(GatewayOptions).Assembly,
            new Dictionary<string, Type> { [GatewayOptions.Section] = typeof(GatewayOptions), [AuthOptions.Section] = typeof(AuthOptions) }));

    public static readonly ProgramSpec[] All = [LevelService, Gateway];

    /// <summary>The program run by an image (the name before any tag), or null for a third-party image (Redis).</summary>
    public static ProgramSpec? ForImage(string image)
    {
        var name = image.Split('@')[0];
        int colon = name.IndexOf(':', name.LastIndexOf('/') + 1);   // the tag may be a compose ${VARIABLE:-default}
        if (colon >= 0) name = name[..colon];
        return All.SingleOrDefault(p => p.Image == name);
    }

    /// <summary>A program binds "Observability" only when it is built with FractalMesh.Observability.</summary>
    static Dictionary<string, Type> SectionsOf(Assembly program, Dictionary<string, Type> own)
    {
        if (program.GetReferencedAssemblies().Any(a => a.Name == typeof(ObservabilityOptions).Assembly.GetName().Name))
            own[ObservabilityOptions.Section] = typeof(ObservabilityOptions);
        return own;
    }

    /// <summary>The entry type of an array or list property, or null for anything else.</summary>
    static Type? ElementType(Type type) =>
        type.IsArray ? type.GetElementType() : type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>) ? type.GetGenericArguments()[0] : null;

    /// <summary>ASP.NET Core's and .NET's own settings that a deployment may set as well (Kestrel's default certificate: the level services' TLS).</summary>
    static bool IsFrameworkKey(string key) =>
        key is "ASPNETCORE_URLS" or "ASPNETCORE_HTTP_PORTS" or "ASPNETCORE_ENVIRONMENT" or "DOTNET_ENVIRONMENT"
        || key.StartsWith("DOTNET_", StringComparison.Ordinal) || key.StartsWith("Logging__", StringComparison.Ordinal)
        || key.StartsWith("Kestrel__Certificates__Default__", StringComparison.Ordinal);

    /// <summary>
    /// Options that name a file inside the container, whose existence this machine cannot check: the model (in the
    /// image) and certificates (on Secret volumes, which the manifest tests check are mounted where these point).
    /// </summary>
    static bool NamesAFileInTheContainer(string member) =>
        member is "Model" or "ModelPath" || member.EndsWith("CertificatePath", StringComparison.Ordinal)
        || member.EndsWith("CertificateKeyPath", StringComparison.Ordinal);

    /// <summary>
    /// What is wrong with these environment variables for this program: a section it does not bind, a key that is no
    /// settable property of the section's options class, a value that does not bind or fails the class's validation
    /// (paths of files inside the container excepted). Empty when all is well.
    /// </summary>
    public IReadOnlyList<string> ProblemsWith(IReadOnlyDictionary<string, string> environment, string where)
    {
        var problems = new List<string>();
        var bySection = new Dictionary<string, Dictionary<string, string?>>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in environment)
        {
            if (IsFrameworkKey(key)) continue;
            var parts = key.Split("__");
            if (!Sections.TryGetValue(parts[0], out var type))
            {
                problems.Add($"{where}: {key}: the {Name} binds no section '{parts[0]}' (it binds {string.Join(", ", Sections.Keys)})");
                continue;
            }
            var property = type.GetProperty(parts.Length > 1 ? parts[1] : "", BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (parts.Length < 2 || property is null || property.SetMethod is not { IsPublic: true })
                problems.Add($"{where}: {key}: {type.Name} has no settable property '{(parts.Length > 1 ? parts[1] : "")}'");
            else if (parts.Length > 4 || parts.Length >= 3 && !(int.TryParse(parts[2], out _) && ElementType(property.PropertyType) is not null))
                problems.Add($"{where}: {key}: {type.Name}.{property.Name} is not a list that '{parts[2]}' could index");
            else if (parts.Length == 4 && ElementType(property.PropertyType)!.GetProperty(parts[3], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase) is null)
                problems.Add($"{where}: {key}: the entries of {type.Name}.{property.Name} have no property '{parts[3]}'");
            else
            {
                if (!bySection.TryGetValue(type.Name, out var values)) bySection[type.Name] = values = [];
                values[string.Join(':', parts[1..])] = value;
            }
        }
        foreach (var (section, type) in Sections)
        {
            if (!bySection.TryGetValue(type.Name, out var values)) continue;
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
            object options;
            try { options = configuration.Get(type, o => o.ErrorOnUnknownConfiguration = true) ?? Activator.CreateInstance(type)!; }
            catch (InvalidOperationException e)
            {
                problems.Add($"{where}: section {section}: {e.Message}");
                continue;
            }
            var results = new List<ValidationResult>();
            Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true);
            problems.AddRange(results.Where(r => !r.MemberNames.Any(NamesAFileInTheContainer))
                .Select(r => $"{where}: section {section}: {r.ErrorMessage}"));
        }
        return problems;
    }
}

/// <summary>Ports the programs listen on, derived from the same settings the programs read.</summary>
static class Ports
{
    /// <summary>The port of http://HOST:PORT where HOST may be Kestrel's or HttpListener's wildcard (+ or *).</summary>
    public static int OfUrl(string url)
    {
        var normalized = url.Replace("://+:", "://any:").Replace("://*:", "://any:").Replace("://[::]:", "://any:");
        return Uri.TryCreate(normalized, UriKind.Absolute, out var uri) && !uri.IsDefaultPort
            ? uri.Port : throw new FormatException($"'{url}' names no port");
    }

    /// <summary>A setting from the deployment's environment, else from the image's ENV.</summary>
    static string? Setting(string key, IReadOnlyDictionary<string, string> environment, Dockerfile image) =>
        environment.TryGetValue(key, out var v) ? v : image.Environment.GetValueOrDefault(key);

    /// <summary>The level service's gRPC port: ASP.NET Core's URLS, else HTTP_PORTS (set by the image).</summary>
    public static int LevelService(IReadOnlyDictionary<string, string> environment, Dockerfile image)
    {
        if (Setting("ASPNETCORE_URLS", environment, image) is { } urls) return OfUrl(urls.Split(';')[0]);
        if (Setting("ASPNETCORE_HTTP_PORTS", environment, image) is { } ports) return int.Parse(ports.Split(';', ',')[0]);
        throw new InvalidOperationException("the level service's port is set nowhere: neither ASPNETCORE_URLS nor ASPNETCORE_HTTP_PORTS");
    }

    /// <summary>The gateway's gRPC or REST port: Gateway__GrpcUrl / Gateway__RestUrl, else GatewayOptions' default.</summary>
    public static int Gateway(string property, IReadOnlyDictionary<string, string> environment, Dockerfile image)
    {
        var url = Setting($"{GatewayOptions.Section}__{property}", environment, image)
            ?? (string)typeof(GatewayOptions).GetProperty(property)!.GetValue(new GatewayOptions())!;
        return OfUrl(url);
    }

    /// <summary>The Prometheus port (Observability__MetricsUrl), or null when the program exposes none.</summary>
    public static int? Metrics(IReadOnlyDictionary<string, string> environment, Dockerfile image) =>
        Setting($"{ObservabilityOptions.Section}__{nameof(ObservabilityOptions.MetricsUrl)}", environment, image) is { } url
            ? new ObservabilityOptions { MetricsUrl = url }.MetricsEndpoint?.Port : null;
}

/// <summary>Other services a configuration value points at: dns:///NAME:PORT, http://NAME:PORT or a Redis NAME:PORT.</summary>
static class Addresses
{
    static readonly System.Text.RegularExpressions.Regex Pattern =
        new(@"^(?:dns:///|https?://)?(?<host>[A-Za-z][A-Za-z0-9.-]*):(?<port>\d+)(?:[/,].*)?$");

    public static IEnumerable<(string Host, int Port)> In(string value)
    {
        foreach (var part in value.Split(';'))
        {
            var m = Pattern.Match(part.Trim());
            if (m.Success && m.Groups["host"].Value is not ("localhost" or "any"))
                yield return (m.Groups["host"].Value, int.Parse(m.Groups["port"].Value));
        }
    }
}
