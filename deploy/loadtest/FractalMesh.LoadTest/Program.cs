using FractalMesh.LoadTest;

// Ramps concurrency against a running gateway's Generate (gRPC or REST) and reports throughput, latency percentiles and
// errors per step, on the console and as JSON; `compare` sets reports of several topologies side by side with their
// ratios. --help lists the options; deploy/README.md shows how to run it.
return args is ["compare", .. var reports]
    ? await ReportComparison.RunAsync(reports)
    : await LoadTest.RunAsync(args);
