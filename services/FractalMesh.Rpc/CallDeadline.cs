using FractalMesh.Model.Sampling;

namespace FractalMesh.Rpc;

/// <summary>
/// The deadline of the call being served, carried to the calls it makes (docs/ARCHITECTURE.md, Resilience and scale: deadlines on every call, propagated
/// down). <see cref="IPatchSampler"/>'s <c>Sample</c> is synchronous and carries only a cancellation token, so a server sets
/// the deadline around the work with <see cref="Use"/> and <see cref="RemotePatchSampler"/> reads it.
/// </summary>
public static class CallDeadline
{
    static readonly AsyncLocal<DateTime?> current = new();

    /// <summary>The deadline in force (UTC) on this thread or async flow, or null when none.</summary>
    public static DateTime? Current => current.Value;

    /// <summary>
    /// Sets <paramref name="deadlineUtc"/> until the result is disposed; a deadline already in force that is earlier wins.
    /// <see cref="DateTime.MaxValue"/> (what a call without a deadline reports) sets nothing.
    /// </summary>
    public static IDisposable Use(DateTime deadlineUtc)
    {
        var previous = current.Value;
        if (deadlineUtc != DateTime.MaxValue)
        {
            deadlineUtc = deadlineUtc.ToUniversalTime();
            current.Value = previous is { } p && p < deadlineUtc ? p : deadlineUtc;
        }
        return new Restore(previous);
    }

    /// <summary>The deadline of a call made now: the one in force, or <paramref name="timeout"/> from now if that is earlier.</summary>
    public static DateTime For(TimeSpan timeout)
    {
        var own = DateTime.UtcNow + timeout;
        return current.Value is { } inherited && inherited < own ? inherited : own;
    }

    sealed class Restore(DateTime? previous) : IDisposable
    {
        public void Dispose() => current.Value = previous;
    }
}
