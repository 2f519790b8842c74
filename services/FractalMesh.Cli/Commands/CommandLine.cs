namespace FractalMesh.Cli.Commands;

/// <summary>A command-line mistake: printed as one line naming the argument, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>The <c>fractalmesh</c> commands and their dispatch.</summary>
public static class CommandLine
{
    const string Usage = """
        fractalmesh: tools for fractal generative models (Li, Sun, Fan, He 2025)

          verify-reference DIR [--device cpu]   recompute a reference case (config.json, checkpoint-last.pth,
                                                expected.safetensors) and compare every tensor
          convert OFFICIAL.pth --preset NAME --out FILE.safetensors [--half]
                                                convert an official checkpoint to FractalMesh's format
          export RUN_DIR --out FILE [--half] [--classes-from MANIFEST]
                                                write a trained checkpoint for shipping
          presets                               list the presets and their parameter counts
          data emoji [--out DIR] [--size 32|64] build the emoji dataset from npm
          train [--data FILE] [--out DIR] [--preset NAME | --init MODEL] [--steps N] [--batch N] [--lr X] [--max-steps N]
                                                train with the official recipe; resumes from DIR; Ctrl-C saves
          eval-nll [--model FILE] [--data FILE] [--passes N] [--limit N] [--codecs-only]
                                                test-split bits/dim beside lossless WebP and PNG at
                                                maximum effort; --codecs-only skips the model
          generate [--model FILE] [--class LIST] [--count N] [--seed S] [--cfg X] [--schedule linear|constant]
                   [--temperature X] [--filter X] [--iters A,B] [--out DIR] [--device cpu|cuda] [--endpoint URL]
                                                generate images (one PNG per seed, plus a grid)
          inpaint --image PNG --mask PNG --class C [same options]   white in the mask means generate
          outpaint --image PNG [--at X,Y] --class C [same options]  place a smaller image on the canvas
          uncrop --image PNG --keep X,Y,W,H --class C [same options] keep a rectangle, generate around it
          (class-conditional editing: inpaint with another --class)
          bench [--preset NAME | --model FILE] [--batches 1,8,32] [--iters A,B] [--cfg X] [--repeats N]
                [--threads N] [--no-training] [--no-sampling] [--check-invariance]
                                                training step, likelihood pass and sampling speed, per level
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        try
        {
            return args[0] switch
            {
                "verify-reference" => ModelCommands.VerifyReference(new Options(args[1..])),
                "convert" => ModelCommands.Convert(new Options(args[1..])),
                "export" => ModelCommands.Export(new Options(args[1..])),
                "presets" => ModelCommands.ListPresets(),
                "data" => await DataCommand.RunAsync(args[1..]),
                "train" => TrainCommand.Run(new Options(args[1..])),
                "eval-nll" => EvalNllCommand.Run(new Options(args[1..])),
                "bench" => BenchCommand.Run(new Options(args[1..])),
                "generate" or "inpaint" or "outpaint" or "uncrop" => await RemoteGenerate.RunAsync(args[0], new Options(args[1..])),
                _ => throw new UsageException($"unknown command '{args[0]}' (try --help)"),
            };
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"fractalmesh: {e.Message}");
            return 2;
        }
    }
}

/// <summary>Positional arguments and <c>--name value</c> / <c>--flag</c> options; every option must be consumed.</summary>
public sealed class Options
{
    readonly List<string> positional = [];
    readonly Dictionary<string, string?> named = new();
    readonly HashSet<string> used = [];

    public Options(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i].StartsWith("--", StringComparison.Ordinal))
            {
                string key = args[i][2..];
                string? value = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : null;
                named[key] = value;
            }
            else positional.Add(args[i]);
        }
    }

    public string Positional(int index, string name) =>
        index < positional.Count ? positional[index] : throw new UsageException($"missing argument {name}");

    public string? Get(string name)
    {
        used.Add(name);
        return named.TryGetValue(name, out var v) ? v ?? throw new UsageException($"--{name} needs a value") : null;
    }

    public bool Flag(string name)
    {
        used.Add(name);
        if (!named.TryGetValue(name, out var v)) return false;
        if (v is not null) throw new UsageException($"--{name} takes no value (got '{v}')");
        return true;
    }

    public string Require(string name) => Get(name) ?? throw new UsageException($"missing --{name}");

    /// <summary>The integer option <paramref name="name"/> in [min, max], or <paramref name="fallback"/> when absent.</summary>
    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue) =>
        Get(name) is { } v ? ParseInt(v, name, min, max) : fallback;

    /// <summary>The finite number option <paramref name="name"/> in [min, max], or <paramref name="fallback"/> when absent.</summary>
    public double Number(string name, double fallback, double min = double.MinValue, double max = double.MaxValue) =>
        Get(name) is { } v ? ParseNumber(v, name, min, max) : fallback;

    /// <summary>Parses an integer argument; a bad one is a usage error naming <c>--name</c>.</summary>
    public static int ParseInt(string value, string name, int min = int.MinValue, int max = int.MaxValue) =>
        int.TryParse(value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int x) && x >= min && x <= max ? x
        : throw new UsageException($"--{name}: '{value}' is not an integer{Range(min, max, int.MinValue, int.MaxValue)}");

    /// <summary>Parses a finite number; a bad one is a usage error naming <c>--name</c>.</summary>
    public static double ParseNumber(string value, string name, double min = double.MinValue, double max = double.MaxValue) =>
        double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double x) && double.IsFinite(x) && x >= min && x <= max ? x
        : throw new UsageException($"--{name}: '{value}' is not a number{Range(min, max, double.MinValue, double.MaxValue)}");

    static string Range<T>(T min, T max, T lowest, T highest) where T : IEquatable<T>, IFormattable
    {
        string F(T v) => v.ToString(null, System.Globalization.CultureInfo.InvariantCulture);
        return (min.Equals(lowest), max.Equals(highest)) switch
        {
            (true, true) => "",
            (false, true) => $" of at least {F(min)}",
            (true, false) => $" of at most {F(max)}",
            _ => $" in {F(min)}..{F(max)}",
        };
    }

    /// <summary>Call after reading every option: an unknown one is a usage error naming it.</summary>
    public void EnsureAllUsed()
    {
        var unknown = named.Keys.Where(k => !used.Contains(k)).ToList();
        if (unknown.Count > 0) throw new UsageException($"unknown option --{unknown[0]}");
    }
}
