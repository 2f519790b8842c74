using System.Reflection;
using YamlDotNet.RepresentationModel;

namespace FractalMesh.Operations.Tests;

/// <summary>Files of the repository these tests read: the compose file, deploy/ and the programs' build outputs.</summary>
static class Repository
{
    static string Metadata(string key) => typeof(Repository).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == key).Value!;

    public static string Root => Metadata("RepositoryRoot");

    public static string PathOf(string relative) => System.IO.Path.Combine(Root, relative.Replace('/', System.IO.Path.DirectorySeparatorChar));

    /// <summary>Every YAML document of a file (a Kubernetes file holds several, separated by ---).</summary>
    public static IReadOnlyList<YamlMappingNode> LoadYaml(string relative)
    {
        using var reader = new StreamReader(PathOf(relative));
        var stream = new YamlStream();
        stream.Load(reader);
        return stream.Documents.Select(d => d.RootNode as YamlMappingNode
            ?? throw new InvalidDataException($"{relative}: a document is not a mapping")).ToList();
    }
}

/// <summary>Navigation in YamlDotNet's representation model without exceptions for missing keys.</summary>
static class YamlNodes
{
    public static YamlNode? Get(this YamlNode? node, params string[] path)
    {
        foreach (var key in path)
        {
            if (node is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out node)) return null;
        }
        return node;
    }

    public static string? Text(this YamlNode? node, params string[] path) => (node.Get(path) as YamlScalarNode)?.Value;

    public static IEnumerable<YamlNode> Items(this YamlNode? node, params string[] path) =>
        node.Get(path) as YamlSequenceNode ?? (IEnumerable<YamlNode>)[];

    public static IEnumerable<KeyValuePair<string, YamlNode>> Entries(this YamlNode? node, params string[] path) =>
        node.Get(path) is YamlMappingNode map
            ? map.Children.Select(c => new KeyValuePair<string, YamlNode>(((YamlScalarNode)c.Key).Value!, c.Value))
            : [];

    /// <summary>A mapping of scalars (labels, ConfigMap data, compose environment as a map or a KEY=VALUE list).</summary>
    public static Dictionary<string, string> Strings(this YamlNode? node, params string[] path)
    {
        var at = node.Get(path);
        if (at is YamlSequenceNode list)
            return list.Select(i => ((YamlScalarNode)i).Value!.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");
        return node.Entries(path).ToDictionary(e => e.Key, e => (e.Value as YamlScalarNode)?.Value ?? "");
    }
}
