using Xunit;

namespace FractalMesh.Web.Tests;

/// <summary>
/// The page against a gateway with API keys (Auth:Enabled): it loads without a key, says in plain words that a key is
/// needed or was refused, and generates once the right key is typed into its API key field.
/// </summary>
[Collection(WebCollection.Name)]
public sealed class WebPageAuthTests(WebFixture web)
{
    const string Key = "web-test-key-0123456789abcdef";

    [Fact]
    public async Task ThePageAsksForAKeyRefusesAWrongOneAndGeneratesWithTheRightOne()
    {
        await using var gateway = await web.StartOwnGatewayAsync("--Auth:Enabled=true", "--Auth:ApiKeys:0:Name=page-user", $"--Auth:ApiKeys:0:Key={Key}");
        await using var page = await web.OpenAsync(gateway.RestAddress); // the page and the model's description need no key
        var p = page.Page;
        var error = p.Locator("#error");
        await p.FillAsync("#iter-0", "4");
        await p.FillAsync("#iter-1", "2");

        var refused = await p.RunAndWaitForResponseAsync(() => p.ClickAsync("#generate"), r => r.Url.EndsWith("/v1/jobs", StringComparison.Ordinal));
        Assert.Equal(401, refused.Status);
        Assert.Equal("error", await page.WaitForStateAsync("error"));
        Assert.Contains("The gateway asks for an API key", await error.TextContentAsync());

        await p.FillAsync("#api-key", "wrong-key-0123456789abcdef");
        var wrong = await p.RunAndWaitForResponseAsync(() => p.ClickAsync("#generate"), r => r.Url.EndsWith("/v1/jobs", StringComparison.Ordinal));
        Assert.Equal(401, wrong.Status);
        Assert.Equal("error", await page.WaitForStateAsync("error"));
        Assert.Contains("did not accept this API key", await error.TextContentAsync());

        await p.FillAsync("#api-key", Key);
        var accepted = await p.RunAndWaitForResponseAsync(() => p.ClickAsync("#generate"), r => r.Url.EndsWith("/v1/jobs", StringComparison.Ordinal));
        Assert.Equal(200, accepted.Status);
        Assert.Equal($"Bearer {Key}", await accepted.Request.HeaderValueAsync("authorization"));
        Assert.Equal("done", await page.WaitForStateAsync("done", "error"));   // the job's events were read with the key too
        Assert.False(await error.IsVisibleAsync());
        await page.ScreenshotAsync("auth-done.png");
        Assert.Empty(page.ScriptErrors);
    }
}
