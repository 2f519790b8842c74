using System.Diagnostics;
using Xunit;

namespace FractalMesh.Jobs.Tests;

/// <summary>A real redis-server with an ACL user and a password, and one with TLS: the settings that reach it, and a clear refusal.</summary>
public sealed class RedisSecurityTests
{
    // The default user off: only the named ACL user, with its password, may connect.
    const string AclArguments = "--appendonly no --user default off --user fmgw on >s3cret ~sec:* &* +@all -@dangerous";

    static RedisConnectionSettings Settings(RedisServer server, string? user, string? password, bool tls = false, string? ca = null) =>
        new(server.Endpoint + ",connectTimeout=2000", user, password, tls, ca, Section: "Gateway");

    static async Task AssertStoreWorksAsync(StackExchange.Redis.ConnectionMultiplexer multiplexer)
    {
        var store = new RedisJobStore(multiplexer, TimeSpan.FromMinutes(1), "sec");
        var job = new JobRecord { Id = "j", RequestJson = "{}", CreatedAt = DateTimeOffset.UtcNow };
        await store.CreateAsync(job, null);
        Assert.Equal("{}", (await store.GetAsync("j"))!.RequestJson);
        // Everything the runner does, under the deployments' ACL (~prefix:* +@all -@dangerous): scripts, streams, sorted sets.
        Assert.True(await store.TryLeaseAsync("j", "gw-1", TimeSpan.FromSeconds(5)));
        await store.SaveOwnedAsync(job with { Step = 1 }, new JobCheckpoint(1, [1], [true]), "gw-1");
        await store.AppendEventAsync("j", new JobEvent("", JobStatus.Running, 1, 1, 1, null, null));
        Assert.Single(await store.ReadEventsAsync("j", null, TimeSpan.Zero));
        await store.KeepAliveAsync("j");
        Assert.Equal(["j"], await store.ActiveJobsAsync());
        Assert.Empty(await store.OrphanedJobsAsync());
        await store.ReleaseLeaseAsync("j", "gw-1");
    }

    [Fact]
    public async Task TheRightUserAndPasswordConnect()
    {
        using var server = RedisServer.Started(AclArguments);
        using var multiplexer = RedisConnection.Connect(Settings(server, "fmgw", "s3cret"), "test");
        Assert.True(multiplexer.IsConnected);
        await AssertStoreWorksAsync(multiplexer);
    }

    [Theory]
    [InlineData("fmgw", "wrong")]
    [InlineData(null, null)]
    public void AWrongOrMissingPasswordFailsFastNamingTheSettings(string? user, string? password)
    {
        using var server = RedisServer.Started(AclArguments);
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<RedisCredentialsException>(() => RedisConnection.Connect(Settings(server, user, password), "test"));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        Assert.Contains("Gateway:RedisPassword", e.Message);
        Assert.Contains("Gateway:RedisUser", e.Message);
    }

    [Fact]
    public async Task TlsWithTheServersCaConnectsWithRequirePass()
    {
        using var certificates = new TestCertificates();
        using var server = RedisServer.Started("--appendonly no --requirepass s3cret", certificates);
        using var multiplexer = RedisConnection.Connect(Settings(server, null, "s3cret", tls: true, ca: certificates.CaFile), "test");
        Assert.True(multiplexer.IsConnected, string.Join("\n", server.Output));
        await AssertStoreWorksAsync(multiplexer);
    }

    [Fact]
    public void TlsSettingsWithoutTlsOrWithMissingFilesAreNamed()
    {
        var problems = new RedisConnectionSettings("localhost:6379", TlsCaFile: "/nonexistent/ca.crt", TlsClientCertFile: "/nonexistent/c.crt", Section: "Gateway")
            .Problems().ToList();
        Assert.Contains(problems, p => p.Contains("Gateway:RedisTlsClientKeyFile"));
        Assert.Contains(problems, p => p.Contains("Gateway:RedisTlsCaFile: no file"));
        Assert.Contains(problems, p => p.Contains("Gateway:RedisTls must be true"));
    }
}
