using FractalMesh.LoadTest;

// Ramps concurrency against a running gateway's Generate (gRPC or REST) and reports throughput, latency percentiles and
// errors per step, on the console and as JSON. --help lists the options; deploy/README.md shows how to run it.
return await LoadTest.RunAsync(args);
