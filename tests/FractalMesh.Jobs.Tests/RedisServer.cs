using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace FractalMesh.Jobs.Tests;

/// <summary>
/// A real redis-server on a free loopback port, started for the tests (never skipped: a missing binary fails), in a
/// directory of its own (its AOF survives <see cref="Stop"/> and <see cref="Start"/>).
/// </summary>
/// <param name="arguments">More redis-server arguments: <c>--requirepass</c>, <c>--user</c>, <c>--appendonly yes</c>, TLS.</param>
/// <param name="tls">Listen with TLS only (on <see cref="Port"/>), with a certificate from <see cref="TestCertificates"/>.</param>
public sealed class RedisServer(string arguments = "--appendonly no", TestCertificates? tls = null) : IDisposable
{
    Process? process;
    public int Port { get; } = FreePort();
    public string Endpoint => $"127.0.0.1:{Port}";
    public string DataDir { get; } = Directory.CreateTempSubdirectory("fm-redis-").FullName;
    /// <summary>What the server printed (for failure messages).</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Output { get; } = new();

    public RedisServer() : this("--appendonly no") => Start();

    /// <summary>Starts one with <paramref name="arguments"/> at once.</summary>
    public static RedisServer Started(string arguments, TestCertificates? tls = null)
    {
        var server = new RedisServer(arguments, tls);
        server.Start();
        return server;
    }

    static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public void Start()
    {
        string listen = tls is null
            ? $"--port {Port}"
            : $"--port 0 --tls-port {Port} --tls-cert-file {tls.ServerCertFile} --tls-key-file {tls.ServerKeyFile} --tls-ca-cert-file {tls.CaFile} --tls-auth-clients no";
        var psi = new ProcessStartInfo("redis-server", $"{listen} --bind 127.0.0.1 --save \"\" --dir {DataDir} {arguments}")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        process = Process.Start(psi) ?? throw new InvalidOperationException("redis-server did not start (is it installed? .ci/run installs it)");
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) Output.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Output.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            try
            {
                using var c = new TcpClient();
                c.Connect(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException) { Thread.Sleep(50); }
        }
        throw new TimeoutException($"redis-server did not listen on {Port}: {string.Join("\n", Output)}");
    }

    public void Stop()
    {
        if (process is { HasExited: false }) { process.Kill(); process.WaitForExit(); }
        process?.Dispose();
        process = null;
    }

    /// <summary>
    /// A multiplexer configured as the gateway configures its own (<see cref="RedisConnectionSettings.ToConfiguration"/>):
    /// it keeps reconnecting while the server is away, fails commands fast meanwhile, and keeps the client library's
    /// default command timeout (5 s), so a test machine busy with other test processes does not time out a healthy server.
    /// </summary>
    public ConnectionMultiplexer Connect() => ConnectionMultiplexer.Connect(new RedisConnectionSettings(Endpoint).ToConfiguration());

    public void Dispose()
    {
        Stop();
        try { Directory.Delete(DataDir, recursive: true); } catch (IOException) { }
    }
}
