using FractalMesh.Model.Reference;
using Xunit;

namespace FractalMesh.Model.Tests;

/// <summary>Every tensor of every shipped reference case is reproduced within 1e-4 (reference/README.md).</summary>
public class ReferenceParityUnitTests(Xunit.Abstractions.ITestOutputHelper output)
{
    static string[] CaseNames => Directory.GetDirectories(TestData.Path("reference", "parity")).Select(d => Path.GetFileName(d)).Order().ToArray();

    public static TheoryData<string> Cases => new(CaseNames);

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryTensorMatchesTheOfficialImplementation(string caseName)
    {
        var rows = ReferenceVerifier.Verify(TestData.Path("reference", "parity", caseName));
        output.WriteLine(ReferenceVerifier.Format(rows));
        var failures = rows.Where(r => r.Failed).ToList();
        Assert.True(failures.Count == 0, ReferenceVerifier.Format(rows));
        Assert.Contains(rows, r => r.Name == "pixelhead.logits" && r.Status == "PASS");
        Assert.True(rows.Count(r => r.Status == "PASS") >= 10);
    }

    [Fact]
    public void BothGeneratorKindsAreShipped()
    {
        Assert.Contains("tiny_ar", CaseNames);
        Assert.Contains("tiny_mar", CaseNames);
    }
}
