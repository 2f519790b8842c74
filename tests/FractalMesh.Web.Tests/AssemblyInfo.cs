using Xunit;

// One gateway and one browser serve every test (see WebFixture); the gateway runs one job at a time, so tests take turns.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
