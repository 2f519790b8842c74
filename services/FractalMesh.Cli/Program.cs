using FractalMesh.Cli;
using FractalMesh.Cli.Commands;

if (TcmallocRelaunch.Run() is int exitCode) return exitCode;
TcmallocRelaunch.FollowParent();
return await CommandLine.RunAsync(args);
