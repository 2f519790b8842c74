using System.Net.Http.Json;
using FractalMesh.Client;
using FractalMesh.Protos.Api;
using Grpc.Core;

namespace FractalMesh.LoadTest;

/// <summary>Sends request number <c>i</c> of the run: class <c>classes[i mod n]</c>, seed <c>seed + 1000 i</c>.</summary>
public abstract class GenerateCaller : IDisposable
{
    protected GenerateCaller(LoadTestOptions options) => Options = options;

    protected LoadTestOptions Options { get; }

    protected int ClassOf(long i) => Options.Classes[(int)(i % Options.Classes.Length)];
    protected long SeedOf(long i) => Options.Seed + 1000 * i;

    /// <summary>Null when the gateway answered with images, otherwise the error's name (a gRPC status or an HTTP status).</summary>
    public abstract Task<string?> CallAsync(long i, CancellationToken cancel);

    public static GenerateCaller For(LoadTestOptions options) =>
        options.Protocol == "rest" ? new RestCaller(options) : new GrpcCaller(options);

    public abstract void Dispose();

    sealed class GrpcCaller(LoadTestOptions options) : GenerateCaller(options)
    {
        // No retries: every Unavailable is counted as the error it is. Each call's deadline is the run's timeout.
        readonly FractalMeshClient client = new(new FractalMeshClientOptions { Address = options.Target, Timeout = options.Timeout, MaxAttempts = 1 });

        public override async Task<string?> CallAsync(long i, CancellationToken cancel)
        {
            var request = new GenerateRequest
            {
                ClassLabels = { ClassOf(i) },
                Count = Options.Count,
                Seed = SeedOf(i),
                Params = new SamplingParams { Cfg = Options.Cfg, NumIter = { Options.NumIter } },
            };
            try
            {
                var reply = await client.GenerateAsync(request, cancel);
                return reply.Images.Count == Options.Count ? null : "WrongImageCount";
            }
            catch (RpcException e)
            {
                return e.StatusCode.ToString();
            }
        }

        public override void Dispose() => client.Dispose();
    }

    sealed class RestCaller(LoadTestOptions options) : GenerateCaller(options)
    {
        readonly HttpClient http = new() { BaseAddress = options.Target, Timeout = options.Timeout };

        sealed record Reply(List<Image>? Images);
        sealed record Image(string? Png);

        public override async Task<string?> CallAsync(long i, CancellationToken cancel)
        {
            // The proto3 JSON mapping: camelCase fields, int64 (the seed) as a string.
            var body = new
            {
                classLabels = new[] { ClassOf(i) },
                count = Options.Count,
                seed = SeedOf(i).ToString(System.Globalization.CultureInfo.InvariantCulture),
                @params = new { cfg = Options.Cfg, numIter = Options.NumIter },
            };
            try
            {
                using var response = await http.PostAsJsonAsync("v1/images:generate", body, cancel);
                if (!response.IsSuccessStatusCode) return $"HTTP {(int)response.StatusCode}";
                var reply = await response.Content.ReadFromJsonAsync<Reply>(new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web), cancel);
                return reply?.Images?.Count == Options.Count ? null : "WrongImageCount";
            }
            catch (TaskCanceledException) when (!cancel.IsCancellationRequested)
            {
                return "Timeout";
            }
            catch (HttpRequestException e)
            {
                return e.HttpRequestError.ToString();
            }
        }

        public override void Dispose() => http.Dispose();
    }
}
