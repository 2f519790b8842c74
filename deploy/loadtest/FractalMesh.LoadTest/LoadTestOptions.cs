using System.Globalization;
using System.Net;

namespace FractalMesh.LoadTest;

/// <summary>The command line of the load test, checked before any request is sent.</summary>
public sealed record LoadTestOptions
{
    public const string Usage = """
        usage: FractalMesh.LoadTest --target URL [options]
          --target URL          the gateway: its gRPC address (http://127.0.0.1:5080) or, with --protocol rest, its REST address (http://127.0.0.1:5081)
          --protocol P          grpc (default) or rest
          --concurrency LIST    concurrent callers per step, ramped in this order (default 1,4,16)
          --requests N|LIST     requests per step, one number for every step or one per step (default 4 x concurrency, at least 8)
          --duration S          most seconds a step sends new requests; those in flight finish (default 60)
          --warmup N            requests sent one at a time before the first step and not counted (default 1)
          --timeout S           deadline of one request (default 120)
          --classes LIST        class labels, used in turn (default 0)
          --count N             images per request (default 1)
          --seed N              seed of the first request; request i uses seed + 1000 i (default 1)
          --cfg X               guidance scale (default 1: none)
          --num-iter LIST       iterations per level (default: the gateway's)
          --report FILE         where the JSON report goes (default out/loadtest/report.json)
          --allow-remote        send to a target that is not a loopback address (refused by default)
        or:    FractalMesh.LoadTest compare NAME=REPORT.json NAME=REPORT.json [--out FILE]   (reports side by side, with ratios)
        """;

    public required Uri Target { get; init; }
    public string Protocol { get; init; } = "grpc";
    public int[] Concurrency { get; init; } = [1, 4, 16];
    public int[]? Requests { get; init; }
    public TimeSpan StepDuration { get; init; } = TimeSpan.FromSeconds(60);
    public int Warmup { get; init; } = 1;
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(120);
    public int[] Classes { get; init; } = [0];
    public int Count { get; init; } = 1;
    public long Seed { get; init; } = 1;
    public float Cfg { get; init; } = 1f;
    public int[] NumIter { get; init; } = [];
    public string ReportPath { get; init; } = Path.Combine("out", "loadtest", "report.json");

    /// <summary>Requests of step <paramref name="step"/>.</summary>
    public int RequestsOf(int step) => Requests switch
    {
        null => Math.Max(8, 4 * Concurrency[step]),
        { Length: 1 } one => one[0],
        var each => each[step],
    };

    /// <summary>Parses the arguments; throws <see cref="ArgumentException"/> naming the option that is wrong.</summary>
    public static LoadTestOptions Parse(IReadOnlyList<string> args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        bool allowRemote = false;
        for (int i = 0; i < args.Count; i++)
        {
            var name = args[i];
            if (name == "--allow-remote") { allowRemote = true; continue; }
            if (!name.StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Count)
                throw new ArgumentException($"'{name}': expected --option value");
            values[name[2..]] = args[++i];
        }
        string? Take(string key) => values.Remove(key, out var v) ? v : null;
        int Int(string key, string text, int min) =>
            int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= min ? n : throw new ArgumentException($"--{key}: '{text}' is not an integer ≥ {min}");
        int[] Ints(string key, string text, int min) => text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(t => Int(key, t, min)).ToArray();
        double Seconds(string key, string text) =>
            double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s > 0 ? s : throw new ArgumentException($"--{key}: '{text}' is not a positive number of seconds");

        var targetText = Take("target") ?? throw new ArgumentException("--target is required");
        if (!Uri.TryCreate(targetText, UriKind.Absolute, out var target) || target.Scheme is not ("http" or "https"))
            throw new ArgumentException($"--target: '{targetText}' is not an http:// address");
        if (!allowRemote && !IsLoopback(target))
            throw new ArgumentException($"--target: {target.Host} is not a loopback address; pass --allow-remote to load a remote gateway");
        var protocol = Take("protocol") ?? "grpc";
        if (protocol is not ("grpc" or "rest")) throw new ArgumentException($"--protocol: '{protocol}' is neither grpc nor rest");

        var options = new LoadTestOptions { Target = target, Protocol = protocol };
        if (Take("concurrency") is { } c) options = options with { Concurrency = Ints("concurrency", c, 1) };
        if (options.Concurrency.Length == 0) throw new ArgumentException("--concurrency: at least one step");
        if (Take("requests") is { } r)
        {
            var requests = Ints("requests", r, 1);
            if (requests.Length != 1 && requests.Length != options.Concurrency.Length)
                throw new ArgumentException($"--requests: one number, or one per --concurrency step ({options.Concurrency.Length})");
            options = options with { Requests = requests };
        }
        if (Take("duration") is { } d) options = options with { StepDuration = TimeSpan.FromSeconds(Seconds("duration", d)) };
        if (Take("warmup") is { } w) options = options with { Warmup = Int("warmup", w, 0) };
        if (Take("timeout") is { } t) options = options with { Timeout = TimeSpan.FromSeconds(Seconds("timeout", t)) };
        if (Take("classes") is { } cl) options = options with { Classes = Ints("classes", cl, -1) };
        if (options.Classes.Length == 0) throw new ArgumentException("--classes: at least one class");
        if (Take("count") is { } n) options = options with { Count = Int("count", n, 1) };
        if (Take("seed") is { } s) options = options with { Seed = Int("seed", s, 0) };
        if (Take("cfg") is { } g)
            options = options with { Cfg = float.TryParse(g, NumberStyles.Float, CultureInfo.InvariantCulture, out var cfg) && cfg >= 1 ? cfg : throw new ArgumentException($"--cfg: '{g}' is not a number ≥ 1") };
        if (Take("num-iter") is { } it) options = options with { NumIter = Ints("num-iter", it, 1) };
        if (Take("report") is { } rep) options = options with { ReportPath = rep };
        if (values.Count > 0) throw new ArgumentException($"unknown option --{values.Keys.First()}");
        return options;
    }

    static bool IsLoopback(Uri uri) =>
        uri.IsLoopback || IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip);
}
