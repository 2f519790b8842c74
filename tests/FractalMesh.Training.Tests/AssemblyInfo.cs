using Xunit;

// Training draws from libtorch's process-wide random generator (dropout, masks, label drop); tests that compare two runs
// for equality must not interleave with other tests' draws.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
