using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

static class TestData
{
    /// <summary>A file shipped beside the test assembly (the repository's reference/ folder is copied there).</summary>
    public static string Path(params string[] parts) => System.IO.Path.Combine([AppContext.BaseDirectory, .. parts]);

    static readonly object MetaLock = new();

    /// <summary>Runs <paramref name="build"/> with tensors allocated on the meta device: shapes without memory.</summary>
    public static T OnMeta<T>(Func<T> build)
    {
        lock (MetaLock)
        {
            set_default_device(META);
            try { return build(); }
            finally { set_default_device(CPU); }
        }
    }
}
