using System.ComponentModel.DataAnnotations;

namespace FractalMesh.LevelService;

/// <summary>
/// What this level service runs (configuration section <c>Level</c>, validated at start): the checkpoint, the contiguous
/// range of levels it serves (the pixel head comes with the last level), the device, where the next level lives when the
/// range stops above the bottom, and the admission and batching limits.
/// </summary>
public sealed class LevelOptions : IValidatableObject
{
    /// <summary>The configuration section the options are bound from.</summary>
    public const string Section = "Level";

    /// <summary>A FractalMesh <c>.safetensors</c>, a folder with <c>config.json</c> and <c>checkpoint-last.pth</c>, or an official <c>.pth</c> with <see cref="Preset"/>.</summary>
    [Required(ErrorMessage = "Level:Model is required: a .safetensors checkpoint, a folder with config.json and checkpoint-last.pth, or an official .pth with Level:Preset")]
    public string Model { get; set; } = "";

    /// <summary>The preset of an official <c>.pth</c> checkpoint; unused otherwise.</summary>
    public string? Preset { get; set; }

    /// <summary>The first level served (0 = coarsest); default 0.</summary>
    [Range(0, 64, ErrorMessage = "Level:FirstLevel must be between 0 and 64")]
    public int FirstLevel { get; set; }

    /// <summary>
    /// The last level served (the model's level count names the pixel head); default: down to the pixel head. The model's
    /// last generator level brings its pixel head along unless <see cref="NextAddresses"/> is set, which sends the pixel
    /// head's rows to its own service.
    /// </summary>
    [Range(0, 64, ErrorMessage = "Level:LastLevel must be between 0 and 64")]
    public int? LastLevel { get; set; }

    /// <summary>Where the model runs: <c>cpu</c> (default) or <c>cuda</c>, <c>cuda:N</c>.</summary>
    [RegularExpression(@"^(cpu|cuda(:\d+)?)$", ErrorMessage = "Level:Device must be cpu, cuda or cuda:N")]
    public string Device { get; set; } = "cpu";

    /// <summary>
    /// The next level's replicas when <see cref="LastLevel"/> is above the model's last level: <c>http://host:port</c>
    /// entries (round-robin) or one <c>dns:///host:port</c>.
    /// </summary>
    public string[] NextAddresses { get; set; } = [];

    /// <summary>Deadline of a call to the next level when the incoming call has none; default 120 s.</summary>
    [Range(1, 86_400, ErrorMessage = "Level:NextTimeoutSeconds must be between 1 and 86400")]
    public int NextTimeoutSeconds { get; set; } = 120;

    /// <summary>Most rows in one forward pass of a level; a larger call runs alone. Default 1024.</summary>
    [Range(1, 1_000_000, ErrorMessage = "Level:MaxBatchRows must be between 1 and 1000000")]
    public int MaxBatchRows { get; set; } = 1024;

    /// <summary>
    /// Rows per chunk of a pass: a larger pass runs its transformer chunk by chunk so that activations stay in the CPU's
    /// caches (each row's result is the same either way). 0 (default): about 2²⁰ activations a chunk, the measured best on
    /// a CPU; -1: never chunk, the setting for a GPU, where chunks only add kernel launches.
    /// </summary>
    [Range(-1, 1_000_000, ErrorMessage = "Level:ChunkRows must be -1 (never chunk), 0 (automatic) or a row count up to 1000000")]
    public int ChunkRows { get; set; }

    /// <summary>Most rows admitted at once (in flight); a call that would exceed it is answered RESOURCE_EXHAUSTED. Default 8192.</summary>
    [Range(1, 100_000_000, ErrorMessage = "Level:MaxQueueRows must be between 1 and 100000000")]
    public int MaxQueueRows { get; set; } = 8192;

    /// <summary>
    /// Holds every admitted call this long before its rows enter the level's passes: for fault drills and tests that
    /// need a call in flight at a known moment. Default 0 (an idle level starts a call at once).
    /// </summary>
    [Range(0, 60_000, ErrorMessage = "Level:StartDelayMilliseconds must be between 0 and 60000")]
    public int StartDelayMilliseconds { get; set; }

    /// <summary>
    /// The shared secret every caller (the gateway, the level above) must send as <c>Authorization: Bearer</c>; also sent
    /// to <see cref="NextAddresses"/>. Empty (default): the service answers anyone, for local development. grpc.health.v1
    /// stays open either way. See deploy/README.md, Security.
    /// </summary>
    public string? CallSecret { get; set; }

    /// <summary>Call <see cref="NextAddresses"/> over TLS: implied by https:// addresses, needed for a dns:/// address.</summary>
    public bool NextTls { get; set; }

    /// <summary>A PEM file of the CA (or self-signed certificate) the next level's certificate must chain to; empty: the system's roots.</summary>
    public string? NextCaCertificatePath { get; set; }

    /// <summary>Map gRPC server reflection (lets grpcurl list the services without the protos); default false.</summary>
    public bool EnableReflection { get; set; }

    /// <summary>libtorch intra-op threads; 0 (default) leaves libtorch's choice.</summary>
    [Range(0, 1024, ErrorMessage = "Level:TorchThreads must be between 0 and 1024")]
    public int TorchThreads { get; set; }

    /// <summary>Cross-field rules, checked once the fields themselves are valid.</summary>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (LastLevel is { } last && last < FirstLevel)
            yield return new($"Level:LastLevel ({last}) is below Level:FirstLevel ({FirstLevel}): the range is contiguous, first to last",
                [nameof(LastLevel)]);
        if (MaxQueueRows < MaxBatchRows)
            yield return new($"Level:MaxQueueRows ({MaxQueueRows}) must be at least Level:MaxBatchRows ({MaxBatchRows})", [nameof(MaxQueueRows)]);
        if (!string.IsNullOrEmpty(Model) && !File.Exists(Model) && !Directory.Exists(Model))
            yield return new($"Level:Model: no file or folder at '{Model}'", [nameof(Model)]);
        if (!string.IsNullOrEmpty(CallSecret) && CallSecret.Length < 16)
            yield return new("Level:CallSecret is shorter than 16 characters: use a random token (openssl rand -hex 32)", [nameof(CallSecret)]);
        if (!string.IsNullOrWhiteSpace(NextCaCertificatePath) && !File.Exists(NextCaCertificatePath))
            yield return new($"Level:NextCaCertificatePath: no file at '{NextCaCertificatePath}'", [nameof(NextCaCertificatePath)]);
        foreach (var address in NextAddresses)
            if (!address.StartsWith("dns:", StringComparison.OrdinalIgnoreCase)
                && !(Uri.TryCreate(address, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"))
                yield return new($"Level:NextAddresses: '{address}' is not an http://host:port or dns:///host:port address", [nameof(NextAddresses)]);
    }
}
