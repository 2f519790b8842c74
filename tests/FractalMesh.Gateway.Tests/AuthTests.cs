using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using FractalMesh.Jobs.Tests;
using FractalMesh.Protos.Api;
using Grpc.Core;
using Xunit;

namespace FractalMesh.Gateway.Tests;

/// <summary>A gateway with <c>Auth:Enabled</c> and three keys: two users, alice and bob, and an admin.</summary>
public sealed class AuthGatewayFixture : IAsyncLifetime
{
    public const string AliceKey = "alice-key-0123456789abcdef", BobKey = "bob-key-0123456789abcdef", AdminKey = "admin-key-0123456789abcdef";

    public GatewayProcess Gateway { get; private set; } = null!;

    public async Task InitializeAsync() => Gateway = await GatewayProcess.StartAsync(
        "--Auth:Enabled=true",
        "--Auth:ApiKeys:0:Name=alice", $"--Auth:ApiKeys:0:Key={AliceKey}",
        // bob's key is configured by its SHA-256 only.
        "--Auth:ApiKeys:1:Name=bob", $"--Auth:ApiKeys:1:KeySha256={Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(BobKey)))}",
        "--Auth:ApiKeys:2:Name=ops", $"--Auth:ApiKeys:2:Key={AdminKey}", "--Auth:ApiKeys:2:Role=admin");

    public async Task DisposeAsync()
    {
        if (Gateway is not null) await Gateway.DisposeAsync();
    }
}

/// <summary>
/// Authentication and job ownership on a real gateway process: no key or a wrong key is UNAUTHENTICATED over gRPC and 401
/// over REST, on every API; the right key works; health, the page and the model's description stay open; a user sees and
/// cancels only their own jobs (another user's are NOT_FOUND, as if they did not exist), an admin sees and cancels all.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class AuthTests(AuthGatewayFixture fixture) : IClassFixture<AuthGatewayFixture>
{
    GatewayProcess Gateway => fixture.Gateway;

    static GenerateRequest Small(long seed) => new() { ClassLabels = { 1 }, Count = 1, Seed = seed, Params = new SamplingParams { NumIter = { 4, 2 } } };

    [Theory]
    [InlineData(null)]
    [InlineData("not-a-key-0123456789abcdef")]
    public async Task WithoutTheRightKeyEveryGrpcMethodButTheModelsDescriptionIsUnauthenticated(string? key)
    {
        using var client = Gateway.ClientWithKey(key);
        var calls = new Func<Task>[]
        {
            () => client.Images.GenerateAsync(Small(1)).ResponseAsync,
            () => client.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = Small(1) }).ResponseAsync,
            () => client.Jobs.GetJobAsync(new GetJobRequest { Id = new string('0', 32) }).ResponseAsync,
            () => client.Jobs.CancelJobAsync(new CancelJobRequest { Id = new string('0', 32) }).ResponseAsync,
            async () =>
            {
                using var watch = client.Jobs.WatchJob(new WatchJobRequest { Id = new string('0', 32) });
                await watch.ResponseStream.MoveNext(CancellationToken.None);
            },
        };
        foreach (var call in calls)
        {
            var error = await Assert.ThrowsAsync<RpcException>(call);
            Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        }
        // The model's description is open, as GET /v1/model is.
        Assert.Equal(16, (await client.DescribeModelAsync()).ImageSize);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("not-a-key-0123456789abcdef")]
    [InlineData("Basic YWxpY2U6cGFzc3dvcmQ=")]
    public async Task WithoutTheRightKeyRestAnswers401AndHealthAndThePageStayOpen(string? authorization)
    {
        using var generate = new HttpRequestMessage(HttpMethod.Post, "/v1/images:generate") { Content = JsonContent.Create(new { classLabels = new[] { 1 }, count = 1 }) };
        using var job = new HttpRequestMessage(HttpMethod.Get, $"/v1/jobs/{new string('0', 32)}");
        foreach (var request in new[] { generate, job })
        {
            if (authorization is not null)
                request.Headers.Authorization = authorization.StartsWith("Basic ", StringComparison.Ordinal)
                    ? AuthenticationHeaderValue.Parse(authorization) : new AuthenticationHeaderValue("Bearer", authorization);
            using var response = await Gateway.Rest.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Contains("Bearer", response.Headers.WwwAuthenticate.ToString());
        }
        foreach (var open in new[] { "/healthz/live", "/healthz/ready", "/", "/app.js", "/v1/model" })
        {
            using var response = await Gateway.Rest.GetAsync(open);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{open}: {response.StatusCode}");
        }
    }

    [Fact]
    public async Task TheRightKeyGeneratesOverGrpcAndRest()
    {
        using var client = Gateway.ClientWithKey(AuthGatewayFixture.AliceKey);
        var reply = await client.GenerateAsync(Small(5));
        Assert.Single(reply.Images);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/images:generate") { Content = JsonContent.Create(new { classLabels = new[] { 1 }, count = 1, seed = "5", @params = new { numIter = new[] { 4, 2 } } }) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AuthGatewayFixture.BobKey); // bob: configured by hash
        using var response = await Gateway.Rest.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(reply.Images[0].Png.ToBase64(), await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AJobIsSeenAndCancelledOnlyByItsSubmitterOrAnAdmin()
    {
        using var alice = Gateway.ClientWithKey(AuthGatewayFixture.AliceKey);
        using var bob = Gateway.ClientWithKey(AuthGatewayFixture.BobKey);
        using var admin = Gateway.ClientWithKey(AuthGatewayFixture.AdminKey);
        var first = await alice.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = Small(10) });
        var second = await alice.Jobs.SubmitJobAsync(new SubmitJobRequest { Generate = Small(11) }); // queued behind the first

        // bob: NOT_FOUND everywhere, the same answer as for a job that never existed.
        foreach (var call in new Func<Task>[]
        {
            () => bob.Jobs.GetJobAsync(new GetJobRequest { Id = first.Id }).ResponseAsync,
            () => bob.Jobs.CancelJobAsync(new CancelJobRequest { Id = second.Id }).ResponseAsync,
            async () =>
            {
                using var watch = bob.Jobs.WatchJob(new WatchJobRequest { Id = first.Id });
                await watch.ResponseStream.MoveNext(CancellationToken.None);
            },
        })
        {
            var error = await Assert.ThrowsAsync<RpcException>(call);
            Assert.Equal(StatusCode.NotFound, error.StatusCode);
        }
        using (var rest = new HttpRequestMessage(HttpMethod.Get, $"/v1/jobs/{first.Id}"))
        {
            rest.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AuthGatewayFixture.BobKey);
            using var response = await Gateway.Rest.SendAsync(rest);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }
        Assert.NotEqual(JobState.Cancelled, (await alice.Jobs.GetJobAsync(new GetJobRequest { Id = second.Id })).State); // bob's cancel did nothing

        // The admin sees alice's job and cancels the other; alice sees both to the end.
        Assert.Equal(first.Id, (await admin.Jobs.GetJobAsync(new GetJobRequest { Id = first.Id })).Id);
        var cancelled = await admin.Jobs.CancelJobAsync(new CancelJobRequest { Id = second.Id });
        Assert.Contains(cancelled.State, new[] { JobState.Cancelled, JobState.Done });
        await foreach (var e in alice.WatchJobAsync(first.Id))
            if (e.State is JobState.Done or JobState.Failed or JobState.Cancelled) { Assert.Equal(JobState.Done, e.State); break; }
        Assert.Equal(cancelled.State, (await alice.Jobs.GetJobAsync(new GetJobRequest { Id = second.Id })).State);
    }

    [Fact]
    public async Task IdempotencyKeysBelongToTheirPrincipal()
    {
        using var alice = Gateway.ClientWithKey(AuthGatewayFixture.AliceKey);
        using var bob = Gateway.ClientWithKey(AuthGatewayFixture.BobKey);
        var request = new SubmitJobRequest { Generate = Small(20), IdempotencyKey = "same-key" };
        var mine = await alice.Jobs.SubmitJobAsync(request);
        var theirs = await bob.Jobs.SubmitJobAsync(request);
        Assert.NotEqual(mine.Id, theirs.Id);                                              // not alice's job handed to bob
        Assert.Equal(mine.Id, (await alice.Jobs.SubmitJobAsync(request)).Id);             // still idempotent for alice
        await alice.Jobs.CancelJobAsync(new CancelJobRequest { Id = mine.Id });
        await bob.Jobs.CancelJobAsync(new CancelJobRequest { Id = theirs.Id });
    }
}

/// <summary>
/// Ownership travels with the job through Redis: two gateway replicas with the same keys share a Redis; a job alice
/// submits on one is hers on the other too (bob: NOT_FOUND; the admin: visible).
/// </summary>
public sealed class AuthRedisTests
{
    [Fact]
    public async Task TheSubmitterIsKeptInRedisAndCheckedByEveryReplica()
    {
        using var redis = new RedisServer();
        string[] Settings(string replica) =>
        [
            $"--Gateway:Redis={redis.Endpoint}", $"--Gateway:ReplicaId={replica}", "--Auth:Enabled=true",
            "--Auth:ApiKeys:0:Name=alice", $"--Auth:ApiKeys:0:Key={AuthGatewayFixture.AliceKey}",
            "--Auth:ApiKeys:1:Name=bob", $"--Auth:ApiKeys:1:Key={AuthGatewayFixture.BobKey}",
            "--Auth:ApiKeys:2:Name=ops", $"--Auth:ApiKeys:2:Key={AuthGatewayFixture.AdminKey}", "--Auth:ApiKeys:2:Role=admin",
        ];
        var starting = new[] { GatewayProcess.StartAsync(Settings("g1")), GatewayProcess.StartAsync(Settings("g2")) };
        await Task.WhenAll(starting.Select(s => s.ContinueWith(_ => { })));
        await using var g1 = await starting[0];
        await using var g2 = await starting[1];

        using var alice1 = g1.ClientWithKey(AuthGatewayFixture.AliceKey);
        var job = await alice1.Jobs.SubmitJobAsync(new SubmitJobRequest
        {
            Generate = new GenerateRequest { ClassLabels = { 1 }, Count = 1, Seed = 9, Params = new SamplingParams { NumIter = { 4, 2 } } },
        });

        using var alice2 = g2.ClientWithKey(AuthGatewayFixture.AliceKey);
        using var bob2 = g2.ClientWithKey(AuthGatewayFixture.BobKey);
        using var admin2 = g2.ClientWithKey(AuthGatewayFixture.AdminKey);
        Assert.Equal(job.Id, (await alice2.Jobs.GetJobAsync(new GetJobRequest { Id = job.Id })).Id);
        Assert.Equal(job.Id, (await admin2.Jobs.GetJobAsync(new GetJobRequest { Id = job.Id })).Id);
        var error = await Assert.ThrowsAsync<RpcException>(() => bob2.Jobs.GetJobAsync(new GetJobRequest { Id = job.Id }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        await foreach (var e in alice2.WatchJobAsync(job.Id))
            if (e.State is JobState.Done or JobState.Failed or JobState.Cancelled) { Assert.Equal(JobState.Done, e.State); break; }
    }
}
