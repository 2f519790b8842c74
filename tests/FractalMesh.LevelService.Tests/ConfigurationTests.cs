using Xunit;

namespace FractalMesh.LevelService.Tests;

/// <summary>Bad configuration stops the LevelService at boot with the key to fix.</summary>
public class ConfigurationTests
{
    public static TheoryData<string, string, string> BadSettings => new()
    {
        { "Level:LastLevel", "0", "Level:LastLevel" },                   // below FirstLevel=1
        { "Level:MaxBatchRows", "0", "Level:MaxBatchRows" },
        { "Level:Device", "tpu", "Level:Device" },
        { "Level:Model", "/nonexistent/model.safetensors", "Level:Model" },
        { "Level:CallSecret", "short", "Level:CallSecret" },
        { "Level:NextCaCertificatePath", "/nonexistent/ca.crt", "Level:NextCaCertificatePath" },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public async Task ABadSettingFailsAtBootNamingTheKey(string key, string value, string named)
    {
        var settings = LevelServiceProcess.LevelOneSettings();
        settings[key] = value;
        await using var service = await LevelServiceProcess.StartAsync(settings, waitReady: false);
        var code = await service.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.NotEqual(0, code);
        Assert.Contains(service.Output, l => l.Contains(named));
    }

    [Fact]
    public async Task ARangeAboveTheBottomWithoutTheNextAddressFailsNamingTheKey()
    {
        var settings = LevelServiceProcess.LevelOneSettings();
        settings["Level:FirstLevel"] = "0";
        settings["Level:LastLevel"] = "0";
        await using var service = await LevelServiceProcess.StartAsync(settings, waitReady: false);
        var code = await service.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.NotEqual(0, code);
        Assert.Contains(service.Output, l => l.Contains("Level:NextAddresses"));
    }

    [Fact]
    public async Task ALevelWhoseNextLevelIsRemoteWarmsUpWithoutCallingIt()
    {
        // Nothing listens at the next level's address: the warm-up must not wait on it, and readiness follows.
        var settings = LevelServiceProcess.TinyModelSettings(firstLevel: 0);
        settings["Level:LastLevel"] = "0";
        settings["Level:NextAddresses:0"] = $"http://127.0.0.1:{TestPaths.FreePort()}";
        // The warm-up's copy of the chain is scheduled as the served one: one row per pass, passes chunked by one row.
        settings["Level:MaxBatchRows"] = "1";
        settings["Level:ChunkRows"] = "1";
        await using var service = await LevelServiceProcess.StartAsync(settings);
        Assert.Contains(service.Output, l => l.Contains("warmed up in"));
        Assert.Contains(service.Output, l => l.Contains("ready: serving level 0"));
    }
}
