using static TorchSharp.torch;

namespace FractalMesh.Model.Tests;

static class TestData
{
    /// <summary>A file shipped beside the test assembly (the repository's reference/ folder is copied there).</summary>
    public static string Path(params string[] parts) => System.IO.Path.Combine([AppContext.BaseDirectory, .. parts]);

    /// <summary>Same shape and bitwise-equal values.</summary>
    public static bool Same(Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape)) return false;
        using var eq = a.eq(b);
        using var all = eq.all();
        return all.item<bool>();
    }

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
