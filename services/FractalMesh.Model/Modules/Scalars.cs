using TorchSharp;

namespace FractalMesh.Model.Modules;

/// <summary>
/// Long-lived scalars for the hot paths. TorchSharp's <c>a + b</c> builds a temporary <c>Scalar</c> for alpha = 1 and passes
/// only its handle to native code, so a garbage collection during the call can finalize it mid-call (seen once as
/// "toFloat: Expected false to be true" in add). Keeping the alpha in a static field keeps it alive.
/// </summary>
internal static class Scalars
{
    public static readonly Scalar One = 1.ToScalar();
    public static readonly Scalar Zero = 0f.ToScalar();
    public static readonly Scalar ByteMax = 255f.ToScalar();
}
