using Xunit;

// One gateway process serves every test (see GatewayProcess); its concurrency gate must see one test at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
