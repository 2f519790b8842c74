using System.ComponentModel.DataAnnotations;
using FractalMesh.Gateway.Extensions;

namespace FractalMesh.Gateway;

/// <summary>
/// The gateway's settings, bound from the <c>Gateway</c> section (appsettings.json, <c>Gateway__X</c> environment
/// variables or <c>--Gateway:X=value</c> arguments) and validated when the process starts.
/// </summary>
public sealed class GatewayOptions : IValidatableObject
{
    public const string Section = "Gateway";
    const string RangeMessage = "Gateway:{0} must be between {1} and {2}";

    /// <summary>The model: a FractalMesh .safetensors, an official .pth (with <see cref="Preset"/>) or a reference folder; relative paths from the working directory (the repository root under <c>dotnet run</c>).</summary>
    [Required(ErrorMessage = "Gateway:{0} is required")]
    public string ModelPath { get; set; } = "models/emoji32-demo.safetensors";

    /// <summary>The preset an official .pth checkpoint needs; unused otherwise.</summary>
    public string? Preset { get; set; }

    /// <summary>Where the model runs: cpu (default), cuda or cuda:N.</summary>
    [Required(ErrorMessage = "Gateway:{0} is required")]
    [RegularExpression("^(cpu|cuda(:[0-9]+)?)$", ErrorMessage = "Gateway:Device must be cpu, cuda or cuda:N")]
    public string Device { get; set; } = "cpu";

    /// <summary>Most images one request may ask for (classes × count); 1 to 1024, default 16.</summary>
    [Range(1, 1024, ErrorMessage = RangeMessage)]
    public int MaxImagesPerRequest { get; set; } = 16;

    /// <summary>Largest request message (gRPC) or body (REST, before base64 overhead); default 1 MiB.</summary>
    [Range(1024, 64 * 1024 * 1024, ErrorMessage = RangeMessage)]
    public int MaxRequestBytes { get; set; } = 1024 * 1024;

    /// <summary>Largest PNG accepted in image_png or mask_png; default 256 KiB.</summary>
    [Range(64, 64 * 1024 * 1024, ErrorMessage = RangeMessage)]
    public int MaxImageBytes { get; set; } = 256 * 1024;

    /// <summary>
    /// Requests generating at once (their rows share every level's forward passes step by step); the rest wait in a
    /// bounded queue. Default 16.
    /// </summary>
    [Range(1, 64, ErrorMessage = RangeMessage)]
    public int MaxConcurrentRequests { get; set; } = 16;

    /// <summary>Requests that may wait for a slot; beyond this the gateway answers RESOURCE_EXHAUSTED (HTTP 429). Default 32.</summary>
    [Range(0, 10_000, ErrorMessage = RangeMessage)]
    public int MaxQueuedRequests { get; set; } = 32;

    /// <summary>
    /// Where gRPC is served over HTTP/2: http:// without TLS (prior knowledge), or https:// with TLS and
    /// <see cref="CertificatePath"/>; default http://localhost:5080.
    /// </summary>
    [Required(ErrorMessage = "Gateway:{0} is required")]
    public string GrpcUrl { get; set; } = "http://localhost:5080";

    /// <summary>Where the REST bridge (and health) is served over HTTP/1.1, http:// or https://; default http://localhost:5081.</summary>
    [Required(ErrorMessage = "Gateway:{0} is required")]
    public string RestUrl { get; set; } = "http://localhost:5081";

    /// <summary>
    /// The TLS certificate of the https:// addresses among <see cref="GrpcUrl"/> and <see cref="RestUrl"/>: a PKCS#12 file
    /// (.pfx, with <see cref="CertificatePassword"/>) or a PEM certificate with <see cref="CertificateKeyPath"/> (a Kubernetes
    /// TLS Secret's <c>tls.crt</c> and <c>tls.key</c>). Read once at start.
    /// </summary>
    public string? CertificatePath { get; set; }

    /// <summary>The PEM private key of a PEM <see cref="CertificatePath"/>; empty for a .pfx.</summary>
    public string? CertificateKeyPath { get; set; }

    /// <summary>The password of a .pfx <see cref="CertificatePath"/>, if it has one.</summary>
    public string? CertificatePassword { get; set; }

    /// <summary>
    /// The shared secret sent to the level services as <c>Authorization: Bearer</c> on every call (their
    /// <c>Level:CallSecret</c>); empty: calls carry none. See deploy/README.md, Security.
    /// </summary>
    public string? LevelCallSecret { get; set; }

    /// <summary>
    /// Call the level services over TLS: implied by https:// addresses, needed for a dns:/// address. Their certificate is
    /// checked against <see cref="LevelCaCertificatePath"/> when set, the system's trusted roots otherwise.
    /// </summary>
    public bool LevelTls { get; set; }

    /// <summary>A PEM file of the CA (or self-signed certificate) that signs the level services' certificates.</summary>
    public string? LevelCaCertificatePath { get; set; }

    /// <summary>The certificate for https:// listening addresses, or null when none is configured.</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2? LoadCertificate()
    {
        if (string.IsNullOrWhiteSpace(CertificatePath)) return null;
        return string.IsNullOrWhiteSpace(CertificateKeyPath)
            ? System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12FromFile(CertificatePath, CertificatePassword)
            : System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(CertificatePath, CertificateKeyPath);
    }

    /// <summary>
    /// Where job state lives: a StackExchange.Redis connection string (e.g. <c>localhost:6379</c>) shared by every gateway
    /// replica, or empty (the default) for the embedded mode's in-memory store, which dies with the process.
    /// </summary>
    public string? Redis { get; set; }

    /// <summary>The Redis ACL user (Redis 6+); empty: the connection string's <c>user=</c>, or Redis's <c>default</c> user.</summary>
    public string? RedisUser { get; set; }

    /// <summary>The password of <see cref="RedisUser"/> (or of <c>requirepass</c>); set it from a secret, never in a config file.</summary>
    public string? RedisPassword { get; set; }

    /// <summary>Connect to Redis with TLS (Redis's <c>tls-port</c>); default false.</summary>
    public bool RedisTls { get; set; }

    /// <summary>A PEM file of the CA that signed Redis's certificate, trusted instead of the system's CAs; needs <see cref="RedisTls"/>.</summary>
    public string? RedisTlsCaFile { get; set; }

    /// <summary>A PEM client certificate, for a Redis with <c>tls-auth-clients yes</c>; with <see cref="RedisTlsClientKeyFile"/>.</summary>
    public string? RedisTlsClientCertFile { get; set; }

    /// <summary>The PEM private key of <see cref="RedisTlsClientCertFile"/>.</summary>
    public string? RedisTlsClientKeyFile { get; set; }

    /// <summary>The Redis settings as the job store takes them.</summary>
    public FractalMesh.Jobs.RedisConnectionSettings RedisSettings() =>
        new(Redis ?? "", RedisUser, RedisPassword, RedisTls, RedisTlsCaFile, RedisTlsClientCertFile, RedisTlsClientKeyFile, Section: "Gateway");

    /// <summary>Prefix of every Redis key the gateway writes; replicas that share jobs share it. Default fm.</summary>
    [RegularExpression("^[A-Za-z0-9_.-]{1,32}$", ErrorMessage = "Gateway:RedisKeyPrefix must be 1 to 32 characters of A-Z, a-z, 0-9, _ . -")]
    public string RedisKeyPrefix { get; set; } = "fm";

    /// <summary>This replica's name in job leases and events; default host name, process id and a random suffix.</summary>
    [RegularExpression("^[A-Za-z0-9_.:-]{1,64}$", ErrorMessage = "Gateway:ReplicaId must be 1 to 64 characters of A-Z, a-z, 0-9, _ . : -")]
    public string? ReplicaId { get; set; }

    /// <summary>
    /// Life of a job's owner lease without renewal (renewed every third of it, at least twice a second): after a gateway
    /// dies, another replica takes its jobs over within about this long. Default 15 s.
    /// </summary>
    [Range(0.5, 3600, ErrorMessage = RangeMessage)]
    public double JobLeaseSeconds { get; set; } = 15;

    /// <summary>Jobs generating at once on this replica; default 1 (independent of <see cref="MaxConcurrentRequests"/>).</summary>
    [Range(1, 64, ErrorMessage = RangeMessage)]
    public int MaxRunningJobs { get; set; } = 1;

    /// <summary>Jobs waiting on this replica; beyond this SubmitJob answers RESOURCE_EXHAUSTED (HTTP 429). Default 64.</summary>
    [Range(1, 100_000, ErrorMessage = RangeMessage)]
    public int MaxQueuedJobs { get; set; } = 64;

    /// <summary>Job watches (WatchJob streams) open at once on this replica; beyond this WatchJob answers RESOURCE_EXHAUSTED (HTTP 429). Default 1000.</summary>
    [Range(1, 100_000, ErrorMessage = RangeMessage)]
    public int MaxWatchers { get; set; } = 1000;

    /// <summary>How long a job's state is kept (the TTL of its Redis keys; finished jobs in memory); default 60 minutes.</summary>
    [Range(1, 60 * 24 * 30, ErrorMessage = RangeMessage)]
    public int JobRetentionMinutes { get; set; } = 60;

    /// <summary>
    /// Distributed mode (docs/ARCHITECTURE.md, Processes): the replicas of the level service that samples levels <see cref="FirstRemoteLevel"/>
    /// and below, as <c>http://host:port</c> entries (client-side round-robin) or one <c>dns:///host:port</c> (every
    /// address the name resolves to, re-resolved every 15 s: a headless Kubernetes Service, a compose service scaled with
    /// <c>--scale</c>). Empty (the default): embedded mode, every level in this process. Level 0 reports every step back
    /// to the gateway, so previews, per-step checkpoints and resumption stay exact wherever it runs.
    /// </summary>
    public string[] LevelAddresses { get; set; } = [];

    /// <summary>
    /// The first level served by <see cref="LevelAddresses"/> (0 to the model's level count, which is the pixel head); the
    /// levels above it run here. Default 0: every level in level services, no weights in the gateway.
    /// </summary>
    [Range(0, 64, ErrorMessage = RangeMessage)]
    public int FirstRemoteLevel { get; set; }

    /// <summary>Deadline of a call to the level services when the incoming call has none (jobs, gRPC calls without a deadline); default 120 s.</summary>
    [Range(1, 86_400, ErrorMessage = RangeMessage)]
    public int LevelTimeoutSeconds { get; set; } = 120;

    /// <summary>
    /// libtorch intra-op threads; 0 (default) leaves libtorch's choice (one per core). On a CPU shared with other processes,
    /// 1 or 2 avoids OpenMP threads spin-waiting at barriers for one another.
    /// </summary>
    [Range(0, 1024, ErrorMessage = RangeMessage)]
    public int TorchThreads { get; set; }

    /// <summary>Whether the levels from <see cref="FirstRemoteLevel"/> down run in level services.</summary>
    public bool Distributed => LevelAddresses.Length > 0;

    public IEnumerable<ValidationResult> Validate(ValidationContext context)
    {
        foreach (var address in LevelAddresses)
            if (!address.StartsWith("dns:///", StringComparison.OrdinalIgnoreCase)
                && !(Uri.TryCreate(address, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"))
                yield return new ValidationResult($"Gateway:LevelAddresses: '{address}' is not an http://host:port or dns:///host:port address", [nameof(LevelAddresses)]);
        if (LevelAddresses.Length > 1 && LevelAddresses.Any(a => a.StartsWith("dns:", StringComparison.OrdinalIgnoreCase)))
            yield return new ValidationResult("Gateway:LevelAddresses: a dns:/// address stands alone (it resolves to every replica); list http:// addresses instead",
                [nameof(LevelAddresses)]);
        if (!string.IsNullOrWhiteSpace(Redis))
        {
            string? problem = null;
            try { StackExchange.Redis.ConfigurationOptions.Parse(Redis); }
            catch (Exception e) when (e is ArgumentException or FormatException or NotSupportedException) { problem = e.Message; }
            if (problem is not null) yield return new ValidationResult($"Gateway:Redis: '{Redis}' is not a Redis connection string: {problem}", [nameof(Redis)]);
            else foreach (var message in RedisSettings().Problems()) yield return new ValidationResult(message, [nameof(Redis)]);
        }
        if (MaxImageBytes > MaxRequestBytes)
            yield return new ValidationResult($"Gateway:MaxImageBytes ({MaxImageBytes}) exceeds Gateway:MaxRequestBytes ({MaxRequestBytes})",
                [nameof(MaxImageBytes)]);
        foreach (var (name, url) in new[] { (nameof(GrpcUrl), GrpcUrl), (nameof(RestUrl), RestUrl) })
            if (!string.IsNullOrWhiteSpace(url) && ListenAddress.Parse(url) is null)
                yield return new ValidationResult($"Gateway:{name}: '{url}' is not http(s)://HOST:PORT (HOST: localhost, an IP address, or * for all)", [name]);
            else if (ListenAddress.Parse(url) is { Tls: true } && string.IsNullOrWhiteSpace(CertificatePath))
                yield return new ValidationResult($"Gateway:{name}: '{url}' is https but Gateway:CertificatePath is not set", [name]);
        foreach (var (name, path) in new[] { (nameof(CertificatePath), CertificatePath), (nameof(CertificateKeyPath), CertificateKeyPath), (nameof(LevelCaCertificatePath), LevelCaCertificatePath) })
            if (!string.IsNullOrWhiteSpace(path) && !File.Exists(path))
                yield return new ValidationResult($"Gateway:{name}: {Path.GetFullPath(path)} not found", [name]);
        if (GrpcUrl == RestUrl)
            yield return new ValidationResult("Gateway:GrpcUrl and Gateway:RestUrl must differ: gRPC needs HTTP/2 and REST HTTP/1.1 on a port without TLS", [nameof(RestUrl)]);
        if (!string.IsNullOrWhiteSpace(ModelPath) && !File.Exists(ModelPath) && !Directory.Exists(ModelPath))
            yield return new ValidationResult($"Gateway:ModelPath: {Path.GetFullPath(ModelPath)} not found (a .safetensors, an official .pth with Gateway:Preset, or a folder with config.json and checkpoint-last.pth)",
                [nameof(ModelPath)]);
    }
}
