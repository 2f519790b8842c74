using System.Text.Json.Serialization;

namespace FractalMesh.Jobs;

/// <summary>Where a job stands.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<JobStatus>))]
public enum JobStatus { Queued, Running, Done, Failed, Cancelled }

/// <summary>
/// A generation job as stored (docs/ARCHITECTURE.md, State in Redis): the request (opaque JSON the gateway understands), its status and the
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
    /// <summary>Share of the job's pixels known or generated after <see cref="Step"/> (0..1).</summary>
    public double DoneFraction { get; init; }
    public string? Error { get; init; }
    /// <summary>PNG bytes and seed of each finished image.</summary>
    public IReadOnlyList<JobImage> Images { get; init; } = [];
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    /// <summary>How many times the job was taken over after its owner stopped.</summary>
    public int Resumptions { get; init; }
    /// <summary>How many times its run was interrupted (a lower level failing) and resumed from the last checkpoint by its owner.</summary>
    public int Interruptions { get; init; }
    /// <summary>The replica that queued or runs the job (its lease holder when it last wrote the record).</summary>
    public string? Owner { get; init; }
    /// <summary>
    /// The principal (API key name) that submitted the job: only it, or an admin, may see or cancel it. Null when the
    /// gateway ran without authentication. Not the <see cref="Owner"/>, which is a replica.
    /// </summary>
    public string? Submitter { get; init; }

    [JsonIgnore]
    public bool IsFinished => Status is JobStatus.Done or JobStatus.Failed or JobStatus.Cancelled;
}

public sealed record JobImage(byte[] Png, long Seed, int Label);

/// <summary>The partial state after a level-0 step: every image's bytes and which pixels are known or generated.</summary>
/// <param name="Step">Level-0 steps completed: the step a resumption starts at.</param>
/// <param name="Pixels">Every image's bytes (images × 3 × H × W, planar), meaningful where <paramref name="Done"/> is set.</param>
/// <param name="Done">Images × H × W, true where the pixel is known or generated.</param>
public sealed record JobCheckpoint(int Step, byte[] Pixels, bool[] Done);

/// <summary>One progress event of a job's stream; <see cref="Id"/> orders them (see <see cref="EventIds"/>) and lets a watcher resume.</summary>
/// <param name="Id">Stream id; empty when appending (the store assigns it).</param>
/// <param name="Status">The job's status after the event.</param>
/// <param name="Step">Level-0 steps completed.</param>
/// <param name="Steps">Level-0 steps in all.</param>
/// <param name="DoneFraction">Share of pixels known or generated (0..1).</param>
/// <param name="PreviewPng">A picture of the partial images (running events), or null.</param>
/// <param name="Error">Why the job failed (failed events).</param>
/// <param name="QueuePosition">While queued: 1 for the next job to start on its replica.</param>
/// <param name="Owner">The replica that wrote the event.</param>
public sealed record JobEvent(string Id, JobStatus Status, int Step, int Steps, double DoneFraction, byte[]? PreviewPng, string? Error,
    int QueuePosition = 0, string? Owner = null);

/// <summary>
/// Event ids are Redis stream ids, <c>milliseconds-sequence</c>; the in-memory store makes ids of the same shape so that a
/// watcher's position means the same in either store.
/// </summary>
public static class EventIds
{
    /// <summary>Parses an id; false when it is not <c>ms-seq</c> with two non-negative integers.</summary>
    public static bool TryParse(string? id, out (long Ms, long Seq) value)
    {
        value = default;
        if (string.IsNullOrEmpty(id)) return false;
        int dash = id.IndexOf('-');
        if (dash <= 0 || dash == id.Length - 1) return false;
        if (!long.TryParse(id.AsSpan(0, dash), System.Globalization.NumberStyles.None, null, out long ms)) return false;
        if (!long.TryParse(id.AsSpan(dash + 1), System.Globalization.NumberStyles.None, null, out long seq)) return false;
        value = (ms, seq);
        return true;
    }

    /// <summary>Whether <paramref name="id"/> comes after <paramref name="after"/> (null: from the start). Both must parse.</summary>
    public static bool IsAfter(string id, string? after)
    {
        if (after is null) return true;
        return TryParse(id, out var a) && TryParse(after, out var b) && (a.Ms, a.Seq).CompareTo((b.Ms, b.Seq)) > 0;
    }

    public static string Format(long ms, long seq) => $"{ms}-{seq}";
}
