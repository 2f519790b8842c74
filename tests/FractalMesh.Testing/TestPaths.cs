using System.Net;
using System.Net.Sockets;
using System.Reflection;

namespace FractalMesh.Testing;

/// <summary>Where the built programs and the reference data are, and free loopback ports.</summary>
public static class TestPaths
{
    /// <summary>The repository this library was built in.</summary>
    public static string RepositoryRoot => Metadata("RepositoryRoot");

    /// <summary>The gateway program, built in the same configuration as the tests.</summary>
    public static string GatewayDll => Program("gateway/FractalMesh.Gateway", "FractalMesh.Gateway.dll");

    /// <summary>The level service program, built in the same configuration as the tests.</summary>
    public static string LevelServiceDll => Program("services/FractalMesh.LevelService", "FractalMesh.LevelService.dll");

    /// <summary>The health probe the images run (docker HEALTHCHECK, Kubernetes exec probes), built in the same configuration as the tests.</summary>
    public static string HealthProbeDll => Program("services/FractalMesh.HealthProbe", "FractalMesh.HealthProbe.dll");

    /// <summary>The reference case <c>tiny_mar</c>: 16×16, MAR levels 0 and 1 and a pixel head (config.json, checkpoint-last.pth).</summary>
    public static string TinyModelFolder => Path.Combine(RepositoryRoot, "reference", "parity", "tiny_mar");

    /// <summary>A loopback port free right now (for a process that must come back on the same address, or listens itself).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    static string Program(string project, string dll) =>
        Path.Combine(RepositoryRoot, project, "bin", Metadata("Configuration"), "net10.0", dll);

    static string Metadata(string key) => typeof(TestPaths).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == key).Value!;
}
