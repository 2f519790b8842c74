using System.Text.Json.Serialization;

namespace FractalMesh.Jobs;

/// <summary>Where a job stands.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<JobStatus>))]
public enum JobStatus { Queued, Running, Done, Failed, Cancelled }

/// <summary>
/// A generation job as stored (DESIGN.md §4): the request (opaque JSON the gateway understands), its status and the
/// level-0 progress. Finished images are stored with the record.
/// </summary>
public sealed record JobRecord
{
    public required string Id { get; init; }
    /// <summary>The submitted request, serialized by the gateway; replayed to resume.</summary>
    public required string RequestJson { get; init; }
    public JobStatus Status { get; init; } = JobStatus.Queued;
    /// <summary>Level-0 steps completed and in all.</summary>
    public int Step { get; init; }
    public int Steps { get; init; }
    public string? Error { get; init; }
    /// <summary>PNG bytes and seed of each finished image.</summary>
    public IReadOnlyList<JobImage> Images { get; init; } = [];
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    /// <summary>How many times the job was taken over after its owner stopped.</summary>
    public int Resumptions { get; init; }

    [JsonIgnore]
    public bool IsFinished => Status is JobStatus.Done or JobStatus.Failed or JobStatus.Cancelled;
}

public sealed record JobImage(byte[] Png, long Seed, int Label);

/// <summary>The partial state after a level-0 step: every image's bytes and which pixels are known or generated.</summary>
public sealed record JobCheckpoint(int Step, byte[] Pixels, bool[] Done);

/// <summary>One progress event of a job's stream; <see cref="Id"/> orders them and lets a watcher resume.</summary>
public sealed record JobEvent(string Id, JobStatus Status, int Step, int Steps, double DoneFraction, byte[]? PreviewPng, string? Error);
