namespace FractalMesh.Client;

/// <summary>Where the gateway is and how to call it; every value but <see cref="Address"/> has a default.</summary>
public sealed class FractalMeshClientOptions
{
    /// <summary>The gateway's gRPC address, e.g. <c>http://localhost:5080</c> (the embedded default's gRPC port).</summary>
    public required Uri Address { get; init; }

    /// <summary>Sent as <c>Authorization: Bearer &lt;key&gt;</c> on every call when set; a gateway without keys ignores it.</summary>
    public string? ApiKey { get; init; }

    /// <summary>The deadline of each unary call (generate, inpaint, outpaint, submit, get, cancel); default 10 minutes.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The deadline of a job watch, which lasts as long as the job; default none (cancel the enumeration to stop).</summary>
    public TimeSpan? WatchTimeout { get; init; }

    /// <summary>Attempts per call, the first included, when the gateway is <c>Unavailable</c>; 1 turns retries off; default 4.</summary>
    public int MaxAttempts { get; init; } = 4;

    /// <summary>The largest message sent or received (PNGs of a whole request); default 64 MiB.</summary>
    public int MaxMessageBytes { get; init; } = 64 << 20;
}
