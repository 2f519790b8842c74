using Xunit;

namespace FractalMesh.Rpc.Tests;

public class CallDeadlineUnitTests
{
    [Fact]
    public void TheEarliestDeadlineInForceWinsAndLeavingRestoresTheOuterOne()
    {
        Assert.Null(CallDeadline.Current);
        var outer = DateTime.UtcNow.AddSeconds(10);
        using (CallDeadline.Use(outer))
        {
            Assert.Equal(outer, CallDeadline.Current);
            using (CallDeadline.Use(outer.AddSeconds(5))) Assert.Equal(outer, CallDeadline.Current);      // later: ignored
            using (CallDeadline.Use(DateTime.MaxValue)) Assert.Equal(outer, CallDeadline.Current);        // "no deadline": ignored
            using (CallDeadline.Use(outer.AddSeconds(-5))) Assert.Equal(outer.AddSeconds(-5), CallDeadline.Current);
            Assert.Equal(outer, CallDeadline.Current);
            Assert.Equal(outer, CallDeadline.For(TimeSpan.FromMinutes(1)));                                  // inherited is earlier
            Assert.True(CallDeadline.For(TimeSpan.FromSeconds(1)) < outer);                                  // own timeout is earlier
        }
        Assert.Null(CallDeadline.Current);
        using (CallDeadline.Use(DateTime.MaxValue)) Assert.Null(CallDeadline.Current);
    }
}
