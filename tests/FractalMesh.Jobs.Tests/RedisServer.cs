using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace FractalMesh.Jobs.Tests;

/// <summary>A real redis-server on a free loopback port, started for the tests (never skipped: a missing binary fails).</summary>
public sealed class RedisServer : IDisposable
{
    Process? process;
    public int Port { get; } = FreePort();
    public string Endpoint => $"127.0.0.1:{Port}";

    public RedisServer() => Start();

    static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public void Start()
    {
        var psi = new ProcessStartInfo("redis-server", $"--port {Port} --bind 127.0.0.1 --save \"\" --appendonly no")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        process = Process.Start(psi) ?? throw new InvalidOperationException("redis-server did not start (is it installed? .ci/run installs it)");
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
        throw new TimeoutException($"redis-server did not listen on {Port}");
    }

    public void Stop()
    {
        if (process is { HasExited: false }) { process.Kill(); process.WaitForExit(); }
        process?.Dispose();
        process = null;
    }

    /// <summary>A multiplexer that keeps retrying while the server is away, as the gateway configures it.</summary>
    public ConnectionMultiplexer Connect() => ConnectionMultiplexer.Connect(new ConfigurationOptions
    {
        EndPoints = { Endpoint }, AbortOnConnectFail = false, ConnectTimeout = 1000, SyncTimeout = 1000, AsyncTimeout = 1000,
    });

    public void Dispose() => Stop();
}
