namespace FractalMesh.Rpc;

/// <summary>Where a level's replicas are and how to call them (docs/ARCHITECTURE.md, Resilience and scale).</summary>
public sealed record RemoteLevelOptions
{
    /// <summary>
    /// The replicas: one or more <c>http://host:port</c> addresses (a static list, balanced round-robin on the client), or a
    /// single <c>dns:///host:port</c> whose every resolved address is balanced round-robin (a headless Kubernetes Service).
    /// </summary>
    public required IReadOnlyList<string> Addresses { get; init; }
    /// <summary>The level the replicas sample (0 = coarsest; the model's level count for the pixel head).</summary>
    public required int Level { get; init; }
    /// <summary>Deadline of a call when the caller has none in force (<see cref="CallDeadline"/>); default 2 minutes.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(2);
    /// <summary>Most rows one call carries; larger requests are split. Default 512.</summary>
    public int MaxRowsPerCall { get; init; } = 512;
    /// <summary>How many calls a large request is spread over; 0 (default) means one per static address (1 for <c>dns:///</c>).</summary>
    public int Shards { get; init; }
    /// <summary>Fewest rows worth a call of their own when spreading over replicas; default 16.</summary>
    public int MinRowsPerShard { get; init; } = 16;
    /// <summary>Attempts of one call, the first included, retried only on Unavailable by the channel; default 5 (1: no retry).</summary>
    public int MaxAttempts { get; init; } = 5;
    /// <summary>Circuit breaker: share of failed calls (Unavailable, DeadlineExceeded, ResourceExhausted) that opens it; default 0.5.</summary>
    public double BreakerFailureRatio { get; init; } = 0.5;
    /// <summary>Circuit breaker: fewest calls in <see cref="BreakerSamplingDuration"/> before it may open (at least 2); default 8.</summary>
    public int BreakerMinimumThroughput { get; init; } = 8;
    /// <summary>Circuit breaker: the window over which failures are counted; default 30 s.</summary>
    public TimeSpan BreakerSamplingDuration { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Circuit breaker: how long it stays open before letting a trial call through; default 5 s.</summary>
    public TimeSpan BreakDuration { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>
    /// How often a <c>dns:///</c> address is resolved again, so that replicas added by scaling (docker compose --scale, a
    /// HorizontalPodAutoscaler) get calls without waiting for a connection to fail; default 15 s.
    /// </summary>
    public TimeSpan DnsRefreshInterval { get; init; } = TimeSpan.FromSeconds(15);
    /// <summary>
    /// A shared secret sent as <c>Authorization: Bearer</c> on every call, which a level service with <c>Level:CallSecret</c>
    /// requires; null (default): none.
    /// </summary>
    public string? CallSecret { get; init; }
    /// <summary>TLS for a <c>dns:///</c> address (an https:// address implies it); default false.</summary>
    public bool Tls { get; init; }
    /// <summary>
    /// A PEM file of the CA (or the self-signed certificate) the replicas' certificates must chain to, instead of the
    /// system's trusted roots; the host name is checked either way.
    /// </summary>
    public string? CaCertificatePath { get; init; }
    /// <summary>Largest message sent or received; default 64 MiB.</summary>
    public int MaxMessageBytes { get; init; } = 64 << 20;
}
