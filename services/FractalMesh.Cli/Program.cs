using FractalMesh.Cli;
using FractalMesh.Cli.Commands;

TcmallocRelaunch.Run();
return await CommandLine.RunAsync(args);
