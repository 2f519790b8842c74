namespace FractalMesh.Testing;

/// <summary>Starts several processes at once (each loads a model and warms up, so in parallel they are ready sooner).</summary>
public static class StartTogether
{
    /// <summary>
    /// Awaits every start; if any fails, the ones that started are disposed (no process outlives the test) and the
    /// failure is thrown.
    /// </summary>
    public static async Task<T[]> AllAsync<T>(params Task<T>[] starting) where T : IAsyncDisposable
    {
        try { return await Task.WhenAll(starting); }
        catch
        {
            foreach (var s in starting.Where(s => s.IsCompletedSuccessfully)) await (await s).DisposeAsync();
            throw;
        }
    }
}
