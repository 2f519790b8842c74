using System.Runtime.InteropServices;

namespace FractalMesh.Cli;

/// <summary>
/// Runs the command line under tcmalloc where the system has it. libtorch allocates every tensor with the C library's
/// malloc; a training step allocates and frees about 450 MB of activations in blocks above glibc's largest mmap threshold
/// (32 MiB), whose sizes change from step to step (the masking ratio is random), so glibc maps and unmaps them every step
/// and the next step faults every page in again: about 150,000 page faults a step, a quarter of the CPU time in the kernel.
/// tcmalloc keeps such blocks for reuse: the trainer measured 1.7× the images per second at a lower resident size. The
/// allocator can only be chosen before the process starts (LD_PRELOAD), so when the library is found this process
/// replaces itself (<c>execve</c>) with the same command line and tcmalloc preloaded, before it has done anything else:
/// the pid a user started is the one that trains, so every signal (SIGTERM, Ctrl-C, SIGSTOP and SIGCONT to pause a run)
/// reaches it as it is. <c>FRACTALMESH_ALLOCATOR=system</c> keeps the C library's allocator; nothing changes where no
/// tcmalloc is installed (Debian: <c>libtcmalloc-minimal4</c>), off Linux, or when LD_PRELOAD already names an allocator;
/// if <c>execve</c> fails the process goes on as it is.
/// </summary>
public static class TcmallocRelaunch
{
    /// <summary>The variable that turns the relaunch off (<c>system</c>) and marks the relaunched process (<c>tcmalloc</c>).</summary>
    public const string Variable = "FRACTALMESH_ALLOCATOR";

    static readonly string[] Candidates =
    [
        "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
        "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
        "/usr/lib64/libtcmalloc_minimal.so.4",
        "/usr/lib/libtcmalloc_minimal.so.4",
        "/usr/local/lib/libtcmalloc_minimal.so.4",
    ];

    /// <summary>The library to preload, or null when this process should run as it is.</summary>
    public static string? Choose(string? variable, string? preload, Func<string, bool> exists)
    {
        if (!string.IsNullOrEmpty(variable)) return null;            // "system", or already relaunched
        if (preload?.Contains("malloc", StringComparison.Ordinal) == true) return null;
        return Candidates.FirstOrDefault(exists);
    }

    /// <summary>Replaces this process with the same command line under tcmalloc; returns (and the process goes on) when it is not relaunched.</summary>
    public static void Run()
    {
        if (!OperatingSystem.IsLinux()) return;
        string? preload = Environment.GetEnvironmentVariable("LD_PRELOAD");
        var library = Choose(Environment.GetEnvironmentVariable(Variable), preload, File.Exists);
        if (library is null || Environment.ProcessPath is not { } executable) return;
        string[] argv;
        try { argv = File.ReadAllText("/proc/self/cmdline").Split('\0', StringSplitOptions.None); }
        catch (IOException) { return; }
        // cmdline ends with a NUL: the last piece is empty, and execve wants the arrays ended by a null pointer.
        var arguments = argv.Take(argv.Length - 1).Cast<string?>().Append(null).ToArray();
        var environment = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .Where(e => (string)e.Key is not ("LD_PRELOAD" or Variable))
            .Select(e => $"{e.Key}={e.Value}")
            .Append($"LD_PRELOAD={(string.IsNullOrEmpty(preload) ? library : $"{library}:{preload}")}")
            .Append($"{Variable}=tcmalloc")
            .Cast<string?>().Append(null).ToArray();
        ReleaseDiagnosticsSocket();
        try { execve(executable, arguments, environment); }   // returns only on failure
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
    }

    /// <summary>
    /// The runtime's diagnostics server (what dotnet-counters, dotnet-trace and dotnet-dump attach to) listens on
    /// <c>dotnet-diagnostic-{pid}-{start time}-socket</c> in the temp folder. execve keeps both the pid and the start
    /// time, and closes the listener but leaves its file, so the relaunched runtime could not bind that name and would
    /// serve no diagnostics (seen: a training run nobody could attach to). Removing the file first lets it bind anew.
    /// </summary>
    static void ReleaseDiagnosticsSocket()
    {
        try
        {
            foreach (var socket in Directory.EnumerateFiles(Path.GetTempPath(), $"dotnet-diagnostic-{Environment.ProcessId}-*-socket"))
                File.Delete(socket);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    [DllImport("libc", SetLastError = true)]
    static extern int execve([MarshalAs(UnmanagedType.LPUTF8Str)] string path,
        [MarshalAs(UnmanagedType.LPArray, ArraySubType = UnmanagedType.LPStr)] string?[] argv,
        [MarshalAs(UnmanagedType.LPArray, ArraySubType = UnmanagedType.LPStr)] string?[] envp);

    /// <summary>Which allocator serves this process's malloc: the preloaded one found in its memory map, else the C library's.</summary>
    public static string ActiveAllocator()
    {
        if (!OperatingSystem.IsLinux()) return "the system's";
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                if (line.Contains("libtcmalloc", StringComparison.Ordinal)) return "tcmalloc";
                if (line.Contains("libjemalloc", StringComparison.Ordinal)) return "jemalloc";
            }
        }
        catch (IOException) { }
        return "glibc";
    }
}
