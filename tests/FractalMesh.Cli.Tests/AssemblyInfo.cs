using Xunit;

// The commands write to the process's console, which the tests capture: one command at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
