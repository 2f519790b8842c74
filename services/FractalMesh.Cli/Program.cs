using FractalMesh.Cli.Commands;

return await CommandLine.RunAsync(args);
