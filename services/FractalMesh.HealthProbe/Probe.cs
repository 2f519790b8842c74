using System.Globalization;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;

namespace FractalMesh.HealthProbe;

/// <summary>
/// <c>grpc ADDRESS [SERVICE]</c> calls grpc.health.v1 <c>Check</c> (HTTP/2 without TLS for <c>http://</c>) and is healthy
/// when the answer is SERVING; <c>http URL</c> is healthy on a 2xx answer. <c>--timeout S</c> bounds one attempt (default
/// 3 s); <c>--wait S</c> retries every 250 ms until healthy or S seconds have passed (scripts waiting for readiness);
/// <c>--insecure</c> accepts any TLS certificate, for a container probing its own https port over loopback, where the
/// certificate names the Service, not 127.0.0.1.
/// </summary>
public static class Probe
{
    const string Usage = """
        usage: FractalMesh.HealthProbe grpc http(s)://HOST:PORT [SERVICE] [--timeout S] [--wait S] [--insecure]
               FractalMesh.HealthProbe http http(s)://HOST:PORT/PATH [--timeout S] [--wait S] [--insecure]
        exit code: 0 healthy, 1 not healthy, 2 usage error
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        var positional = new List<string>();
        double timeout = 3, wait = 0;
        bool insecure = false;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--insecure") insecure = true;
            else if (args[i] is "--timeout" or "--wait")
            {
                if (i + 1 >= args.Length || !double.TryParse(args[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) || seconds < 0)
                    return Fail($"{args[i]} needs a number of seconds");
                if (args[i] == "--timeout") timeout = seconds; else wait = seconds;
                i++;
            }
            else positional.Add(args[i]);
        }
        if (positional.Count < 2 || !Uri.TryCreate(positional[1], UriKind.Absolute, out var address) || address.Scheme is not ("http" or "https"))
            return Fail("an http:// address is required");
        Func<TimeSpan, Task<string?>> check = positional[0] switch
        {
            "grpc" when positional.Count <= 3 => t => CheckGrpcAsync(address, positional.Count == 3 ? positional[2] : "", t, insecure),
            "http" when positional.Count == 2 => t => CheckHttpAsync(address, t, insecure),
            _ => null!,
        };
        if (check is null) return Fail($"unknown mode '{positional[0]}' or too many arguments");

        var until = DateTime.UtcNow + TimeSpan.FromSeconds(wait);
        while (true)
        {
            var problem = await check(TimeSpan.FromSeconds(timeout));
            if (problem is null) return 0;
            if (DateTime.UtcNow >= until)
            {
                Console.Error.WriteLine($"{positional[1]}: {problem}");
                return 1;
            }
            await Task.Delay(250);
        }
    }

    static int Fail(string message)
    {
        Console.Error.WriteLine($"{message}\n{Usage}");
        return 2;
    }

    /// <summary>Null when the service answers SERVING, else what it answered or why it could not be asked.</summary>
    static async Task<string?> CheckGrpcAsync(Uri address, string service, TimeSpan timeout, bool insecure)
    {
        using var channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = Handler(insecure) });
        try
        {
            var reply = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest { Service = service },
                deadline: DateTime.UtcNow + timeout);
            return reply.Status == HealthCheckResponse.Types.ServingStatus.Serving ? null : $"service '{service}' is {reply.Status}";
        }
        catch (RpcException e)
        {
            return $"service '{service}': {e.StatusCode} {e.Status.Detail}";
        }
    }

    static async Task<string?> CheckHttpAsync(Uri url, TimeSpan timeout, bool insecure)
    {
        using var http = new HttpClient(Handler(insecure)) { Timeout = timeout };
        try
        {
            using var response = await http.GetAsync(url);
            return response.IsSuccessStatusCode ? null : $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}";
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return e.Message;
        }
    }

    /// <summary>A handler that checks certificates as usual, or accepts any with <c>--insecure</c>.</summary>
    static SocketsHttpHandler Handler(bool insecure) => new()
    {
        SslOptions = insecure ? new() { RemoteCertificateValidationCallback = (_, _, _, _) => true } : new(),
    };
}
