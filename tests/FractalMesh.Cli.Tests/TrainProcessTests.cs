using System.Diagnostics;
using FractalMesh.Data;
using FractalMesh.Model.Checkpoints;
using FractalMesh.Training;
using Xunit;

namespace FractalMesh.Cli.Tests;

/// <summary>A real `fractalmesh train` process killed mid-run resumes into the weights of an uninterrupted run.</summary>
public sealed class TrainProcessTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("fm-kill-").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    readonly System.Text.StringBuilder output = new();

    Process Start(string run, string? allocator = null)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment.Remove(TcmallocRelaunch.Variable);
        if (allocator is not null) psi.Environment[TcmallocRelaunch.Variable] = allocator;
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "fractalmesh.dll"), "train", "--data", Path.Combine(dir, "train.fmds"),
                     "--config", Path.Combine(dir, "config.json"), "--out", Path.Combine(dir, run), "--steps", "40", "--warmup", "2",
                     "--batch", "8", "--checkpoint-minutes", "0", "--no-samples", "--threads", "1" })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    static void WaitForLogLines(string log, int lines)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(120) && (!File.Exists(log) || File.ReadAllLines(log).Length < lines)) Thread.Sleep(20);
    }

    /// <summary>The step of the run's saved state (the test fails when there is none).</summary>
    int SavedStep(string run)
    {
        var state = Trainer.FindState(Path.Combine(dir, run));
        Assert.NotNull(state);
        return System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(state!, "state.json"))).RootElement.GetProperty("Step").GetInt32();
    }

    void WriteDataAndConfig()
    {
        var pixels = new byte[16 * 3 * 64];
        new Random(3).NextBytes(pixels);
        FmdsFile.Write(Path.Combine(dir, "train.fmds"), 8, 8, Enumerable.Range(0, 16).Select(i => i % 2).ToArray(), pixels);
        File.WriteAllText(Path.Combine(dir, "config.json"),
            """{"img_size_list":[8,2,1],"embed_dim_list":[32,16,16],"num_blocks_list":[1,1,1],"num_heads_list":[2,2,2],"generator_type_list":["mar","mar","ar"],"num_conds":5,"class_num":2}""");
    }

    [Fact]
    public void KilledTrainingResumesToTheSameWeights()
    {
        WriteDataAndConfig();

        using (var straight = Start("straight")) { Assert.True(straight.WaitForExit(120_000)); Assert.Equal(0, straight.ExitCode); }
        // The command line runs under tcmalloc (build/test.sh installs it), in the process that was started.
        lock (output) Assert.Contains("(native allocator: tcmalloc)", output.ToString());

        using (var killed = Start("killed"))
        {
            WaitForLogLines(Path.Combine(dir, "killed", "log.csv"), 6);
            killed.Kill(entireProcessTree: true);
            killed.WaitForExit();
        }
        int stepAtKill = SavedStep("killed");
        Assert.InRange(stepAtKill, 1, 39); // the kill really interrupted the run
        using (var resumed = Start("killed")) { Assert.True(resumed.WaitForExit(120_000)); Assert.Equal(0, resumed.ExitCode); }

        using var a = ModelCheckpoint.Load(Trainer.CheckpointPath(Path.Combine(dir, "straight")));
        using var b = ModelCheckpoint.Load(Trainer.CheckpointPath(Path.Combine(dir, "killed")));
        var sa = a.state_dict();
        var sb = b.state_dict();
        foreach (var key in sa.Keys)
        {
            using var eq = sa[key].eq(sb[key]).all();
            Assert.True(eq.item<bool>(), key);
        }
        var steps = File.ReadAllLines(Path.Combine(dir, "killed", "log.csv")).Skip(1).Select(l => int.Parse(l.Split(',')[0])).ToList();
        Assert.Equal(Enumerable.Range(1, 40), steps);
    }

    [Fact]
    public void SigtermSavesACheckpointAndExitsCleanly()
    {
        WriteDataAndConfig();
        using var run = Start("terminated");
        string log = Path.Combine(dir, "terminated", "log.csv");
        WaitForLogLines(log, 4);
        Assert.Equal(0, kill(run.Id, 15));   // SIGTERM, as kill, docker stop and Kubernetes send it
        Assert.True(run.WaitForExit(60_000), "the run did not stop on SIGTERM");
        Assert.Equal(0, run.ExitCode);
        int saved = SavedStep("terminated");
        int logged = File.ReadAllLines(log).Length - 1;
        Assert.InRange(saved, 3, 39);         // stopped early ...
        Assert.Equal(logged, saved);          // ... with every logged step in the checkpoint
    }

    [Fact]
    public void ThePidStartedTrainsUnderTcmallocSoSigstopPausesIt()
    {
        WriteDataAndConfig();
        using var run = Start("paused");
        string log = Path.Combine(dir, "paused", "log.csv");
        WaitForLogLines(log, 4);
        Assert.Equal(0, kill(run.Id, 19));   // SIGSTOP first, so the short run cannot finish while it is inspected
        // The command line replaced itself (execve) under tcmalloc: the started pid is the trainer, with no child.
        Assert.Contains("libtcmalloc", File.ReadAllText($"/proc/{run.Id}/maps"));
        Assert.DoesNotContain(Process.GetProcesses(), p => ParentOf(p.Id) == run.Id);
        // ... and its runtime's diagnostics server listens (dotnet-counters and dotnet-trace can attach to the trainer).
        Assert.Contains($"/dotnet-diagnostic-{run.Id}-", File.ReadAllText("/proc/net/unix"));

        Thread.Sleep(300);
        int atStop = File.ReadAllLines(log).Length;
        Thread.Sleep(2000);                  // unpaused, 2 s would log more steps or finish the run
        Assert.Equal(atStop, File.ReadAllLines(log).Length);
        Assert.False(run.HasExited);
        Assert.Equal(0, kill(run.Id, 18));   // SIGCONT
        Assert.True(run.WaitForExit(120_000), "the run did not finish after SIGCONT");
        Assert.Equal(0, run.ExitCode);
        Assert.Equal(41, File.ReadAllLines(log).Length);

        static int ParentOf(int pid)
        {
            try { return int.Parse(File.ReadAllText($"/proc/{pid}/stat").Split(") ")[1].Split(' ')[1]); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException) { return -1; }
        }
    }

    [Fact]
    public void FractalmeshAllocatorSystemKeepsTheCLibrarysMalloc()
    {
        WriteDataAndConfig();
        using (var run = Start("system", allocator: "system")) { Assert.True(run.WaitForExit(120_000)); Assert.Equal(0, run.ExitCode); }
        lock (output) Assert.Contains("(native allocator: glibc)", output.ToString());
    }

    [Fact]
    public void TheRelaunchPicksAnInstalledTcmallocOnlyWhenNothingElseWasChosen()
    {
        const string lib = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";
        Assert.Equal(lib, TcmallocRelaunch.Choose(null, null, path => path == lib));
        Assert.Equal(lib, TcmallocRelaunch.Choose("", "/opt/other.so", path => path == lib));
        Assert.Null(TcmallocRelaunch.Choose("system", null, path => path == lib));
        Assert.Null(TcmallocRelaunch.Choose("tcmalloc", null, path => path == lib));   // the relaunched copy
        Assert.Null(TcmallocRelaunch.Choose(null, "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", path => path == lib));
        Assert.Null(TcmallocRelaunch.Choose(null, null, _ => false));
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int signal);
}
