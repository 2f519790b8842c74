using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;

namespace FractalMesh.Cli.Commands;

/// <summary>A command-line mistake found after parsing (a missing file, a class the model lacks): one line naming the argument, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// The <c>fractalmesh</c> commands on System.CommandLine: typed options, <c>--help</c> on every command, and one line
/// naming the argument with exit code 2 for any usage mistake, from the parser or from a command.
/// </summary>
public static class CommandLine
{
    /// <summary>Exit code of a usage mistake.</summary>
    public const int UsageError = 2;

    /// <summary>Exit code of work that failed on what it was given or found.</summary>
    public const int WorkFailed = 1;

    /// <summary>Every command, as <c>fractalmesh --help</c> lists them.</summary>
    public static RootCommand Create() => new("fractalmesh: tools for fractal generative models (Li, Sun, Fan, He 2025)")
    {
        ModelCommands.VerifyReference(),
        ModelCommands.Convert(),
        ModelCommands.Export(),
        ModelCommands.Grow(),
        ModelCommands.Presets(),
        DataCommand.Create(),
        TrainCommand.Create(),
        EvalNllCommand.Create(),
        ClassifierCommand.Create(),
        GenerateCommand.Create(GenerateMode.Generate),
        GenerateCommand.Create(GenerateMode.Inpaint),
        GenerateCommand.Create(GenerateMode.Outpaint),
        GenerateCommand.Create(GenerateMode.Uncrop),
        BenchCommand.Create(),
    };

    /// <summary>Parses and runs <paramref name="args"/>; 0 on success, 1 when the work failed, 2 for a usage mistake.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var root = Create();
        // Output and Error are read now, so that a caller who redirected the console (the tests) gets the text.
        var invocation = new InvocationConfiguration { Output = Console.Out, Error = Console.Error, EnableDefaultExceptionHandler = false };
        if (args.Length == 0)
        {
            await root.Parse(["--help"]).InvokeAsync(invocation);
            return UsageError;
        }
        var result = root.Parse(args);
        if (result.Action is not HelpAction && result.Errors.Count > 0)
        {
            Console.Error.WriteLine($"fractalmesh: {result.Errors[0].Message} (try '{CommandPath(result.CommandResult)} --help')");
            return UsageError;
        }
        try
        {
            return await result.InvokeAsync(invocation);
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"fractalmesh: {e.Message}");
            return UsageError;
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            // The work failed on what it was given or found (a malformed model file, a missing or unreadable file): one
            // line saying why, not a stack trace.
            Console.Error.WriteLine($"fractalmesh: {e.Message}");
            return WorkFailed;
        }
    }

    static string CommandPath(CommandResult command)
    {
        var names = new List<string>();
        for (SymbolResult? r = command; r is CommandResult c; r = c.Parent) names.Insert(0, c.Command is RootCommand ? "fractalmesh" : c.Command.Name);
        return string.Join(' ', names);
    }
}
