using System.Diagnostics;
using System.Runtime.InteropServices;

namespace FractalMesh.Cli;

/// <summary>
/// Runs the command line under tcmalloc where the system has it. libtorch allocates every tensor with the C library's
/// malloc; a training step allocates and frees about 450 MB of activations in blocks above glibc's largest mmap threshold
/// (32 MiB), whose sizes change from step to step (the masking ratio is random), so glibc maps and unmaps them every step
/// and the next step faults every page in again: about 150,000 page faults a step, a quarter of the CPU time in the kernel.
/// tcmalloc keeps such blocks for reuse: the trainer measured 1.7× the images per second at a lower resident size. The
/// allocator can only be chosen before the process starts (LD_PRELOAD), so when the library is found this process starts
/// itself again with it preloaded, passes signals that terminate on (SIGTERM, SIGHUP, SIGQUIT) to the copy, and exits
/// with its exit code. Ctrl-C reaches both anyway (one process group), and the first copy ignores it and waits.
/// <c>FRACTALMESH_ALLOCATOR=system</c> keeps the C library's allocator; nothing changes where no tcmalloc is installed
/// (Debian: <c>libtcmalloc-minimal4</c>), off Linux, or when LD_PRELOAD already names an allocator.
/// </summary>
public static class TcmallocRelaunch
{
    /// <summary>The variable that turns the relaunch off (<c>system</c>) and marks the relaunched copy (<c>tcmalloc</c>).</summary>
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

    /// <summary>Runs this command line again under tcmalloc and returns its exit code; null when it is not relaunched.</summary>
    public static int? Run()
    {
        if (!OperatingSystem.IsLinux()) return null;
        string? preload = Environment.GetEnvironmentVariable("LD_PRELOAD");
        var library = Choose(Environment.GetEnvironmentVariable(Variable), preload, File.Exists);
        if (library is null || Environment.ProcessPath is not { } executable) return null;
        string[] argv;
        try { argv = File.ReadAllText("/proc/self/cmdline").Split('\0', StringSplitOptions.None); }
        catch (IOException) { return null; }
        // cmdline ends with a NUL: the last piece is empty. argv[0] is how we were started; the executable is what ran.
        var start = new ProcessStartInfo(executable) { UseShellExecute = false };
        foreach (var a in argv.Skip(1).Take(argv.Length - 2)) start.ArgumentList.Add(a);
        start.Environment["LD_PRELOAD"] = string.IsNullOrEmpty(preload) ? library : $"{library}:{preload}";
        start.Environment[Variable] = "tcmalloc";
        start.Environment[ParentVariable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var child = Process.Start(start);
        if (child is null) return null;
        using var term = Forward(PosixSignal.SIGTERM, child, 15);
        using var hup = Forward(PosixSignal.SIGHUP, child, 1);
        using var quit = Forward(PosixSignal.SIGQUIT, child, 3);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => context.Cancel = true);
        child.WaitForExit();
        return child.ExitCode;
    }

    static PosixSignalRegistration Forward(PosixSignal signal, Process child, int number) =>
        PosixSignalRegistration.Create(signal, context =>
        {
            context.Cancel = true;
            kill(child.Id, number);
        });

    /// <summary>
    /// In the relaunched copy: asks the kernel for SIGTERM when the first copy dies, so that killing the pid a user started
    /// (even with SIGKILL, which cannot be passed on) still stops the work, and a training run saves on its way out.
    /// </summary>
    public static void FollowParent()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(Variable) != "tcmalloc") return;
        if (!int.TryParse(Environment.GetEnvironmentVariable(ParentVariable), out int parent)) return;
        try
        {
            prctl(PrSetPdeathsig, 15);
            if (getppid() != parent) Environment.Exit(143);   // the first copy died before the request took effect
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
    }

    const string ParentVariable = "FRACTALMESH_ALLOCATOR_PARENT";
    const int PrSetPdeathsig = 1;

    [DllImport("libc")]
    static extern int prctl(int option, nuint argument);

    [DllImport("libc")]
    static extern int getppid();

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

    [DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int signal);
}
