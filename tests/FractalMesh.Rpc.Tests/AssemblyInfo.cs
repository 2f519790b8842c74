using Xunit;

// Server tests start processes that share 2 cores with the test runner: one test at a time keeps timings honest.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
