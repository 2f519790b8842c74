namespace FractalMesh.Model.Sampling;

/// <summary>
/// A row's own counter-based random stream (docs/ARCHITECTURE.md, The level contract). Image <c>i</c> of a request with seed <c>s</c> starts from
/// <c>ForImage(s + i)</c>; a patch handed down gets <see cref="Child"/> of its level and index; each draw is a pure function of
/// (stream, level, purpose, counter), so a result depends only on the request, never on batch neighbours, sharding or resumption.
/// </summary>
public readonly record struct RowStream(ulong Key)
{
    /// <summary>The stream of one image, from its own seed.</summary>
    public static RowStream ForImage(long seed) => new(Mix((ulong)seed, 0xF2AC7A1_0000_0001UL));

    /// <summary>The stream of patch <paramref name="patch"/> generated at <paramref name="level"/> for this row.</summary>
    public RowStream Child(int level, int patch) => new(Mix(Key, ((ulong)(uint)level << 32) | (uint)patch));

    /// <summary>A uniform number in [0, 1) for draw <paramref name="counter"/> of <paramref name="purpose"/> at <paramref name="level"/>.</summary>
    public double Uniform(int level, Purpose purpose, long counter)
    {
        ulong z = Mix(Mix(Key, ((ulong)(uint)level << 8) | (ulong)purpose), (ulong)counter);
        return (z >> 11) * (1.0 / (1UL << 53));
    }

    /// <summary>What a draw is for, so that different uses never share numbers.</summary>
    public enum Purpose : byte { Order = 1, Red = 2, Green = 3, Blue = 4 }

    /// <summary>SplitMix64 finalizer over a combined key: fast, well mixed, identical on every machine.</summary>
    static ulong Mix(ulong a, ulong b)
    {
        ulong z = a ^ (b + 0x9E3779B97F4A7C15UL + (a << 6) + (a >> 2));
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
