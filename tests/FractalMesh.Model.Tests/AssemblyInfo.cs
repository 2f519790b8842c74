using Xunit;

// libtorch's default device (the meta device for shape-only tests) and its random generator are process-wide:
// test classes that build or sample models must not interleave.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
