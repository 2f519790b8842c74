using Xunit;

namespace FractalMesh.Gateway.Tests;

/// <summary>Tests that share one gateway process; they run one after another, so the concurrency gate sees only what a test sends.</summary>
[CollectionDefinition(Name)]
public sealed class GatewayCollection : ICollectionFixture<GatewayProcess>
{
    public const string Name = "gateway process";
}
