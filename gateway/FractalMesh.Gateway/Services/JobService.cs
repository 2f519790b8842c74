using FractalMesh.Gateway.Jobs;
using FractalMesh.Gateway.Security;
using FractalMesh.Gateway.Validation;
using FractalMesh.Jobs;
using FractalMesh.Protos.Api;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using JobEvent = FractalMesh.Protos.Api.JobEvent;
using JobState = FractalMesh.Protos.Api.JobState;

namespace FractalMesh.Gateway.Services;

/// <summary>
/// The job API (protos/fractalmesh.proto, service Jobs) over gRPC and REST: submit returns at once, the
/// <see cref="JobRunner"/> queues and runs the job with a checkpoint after every level-0 step, and any replica sharing the
/// store can get, watch or cancel it. A job is seen and cancelled only by the principal that submitted it or an admin;
/// anyone else gets NOT_FOUND, the same answer as for an id that never existed, so job ids cannot be probed
/// (docs/ARCHITECTURE.md, Security).
/// </summary>
public sealed class JobService(RequestValidator validator, JobRunner runner, IJobStore store, WatcherGate watchers, ILogger<JobService> logger)
    : FractalMesh.Protos.Api.Jobs.JobsBase
{
    /// <summary>How long CancelJob waits for a running job to stop before answering with its state then.</summary>
    static readonly TimeSpan CancelWait = TimeSpan.FromSeconds(5);

    /// <summary>How long a watched job may be missing from the store (Redis restarted, its owner not yet rewriting it) before the watch ends.</summary>
    static readonly TimeSpan MissingGrace = TimeSpan.FromSeconds(30);

    public override async Task<Job> SubmitJob(SubmitJobRequest request, ServerCallContext context)
    {
        var job = validator.Job(request);
        string spec = ImageJobExecutor.Serialize(request);
        string? principal = Callers.Principal(context.GetHttpContext().User);
        // Idempotency keys are the caller's own: another principal's equal key names another job.
        string? key = request.IdempotencyKey.Length == 0 ? null : principal is null ? request.IdempotencyKey : $"{principal}:{request.IdempotencyKey}";
        (JobRecord Job, bool Created) submitted;
        try
        {
            submitted = await SubmitterJobStore.SubmitAs(principal,
                () => runner.SubmitAsync(spec, job.Options.NumIter[0], key, context.CancellationToken));
        }
        catch (JobQueueFullException e)
        {
            throw new Google.Rpc.Status
            {
                Code = (int)Code.ResourceExhausted,
                Message = $"the gateway is busy: {e.Message}",
                Details = { Any.Pack(new RetryInfo { RetryDelay = Duration.FromTimeSpan(TimeSpan.FromSeconds(1)) }) },
            }.ToRpcException();
        }
        if (!submitted.Created && submitted.Job.RequestJson != spec)
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.FailedPrecondition,
                $"idempotency_key '{key}' already names job {submitted.Job.Id}, submitted with a different request; use a new key"));
        }
        if (submitted.Created) logger.LogInformation("Job {Id}: {Count} image(s) submitted", submitted.Job.Id, job.Images.Count);
        return ToJob(submitted.Job);
    }

    public override async Task<Job> GetJob(GetJobRequest request, ServerCallContext context)
    {
        RequestValidator.CheckJobId(request.Id);
        return ToJob(await VisibleAsync(request.Id, context) ?? throw NotFound(request.Id));
    }

    public override async Task<Job> CancelJob(CancelJobRequest request, ServerCallContext context)
    {
        RequestValidator.CheckJobId(request.Id);
        _ = await VisibleAsync(request.Id, context) ?? throw NotFound(request.Id);
        var job = await runner.CancelAsync(request.Id, CancelWait, context.CancellationToken) ?? throw NotFound(request.Id);
        return ToJob(job);
    }

    public override async Task WatchJob(WatchJobRequest request, IServerStreamWriter<JobEvent> responseStream, ServerCallContext context)
    {
        RequestValidator.CheckWatch(request);
        using var place = watchers.Enter();
        var cancel = context.CancellationToken;
        string id = request.Id;
        _ = await VisibleAsync(id, context) ?? throw NotFound(id);
        string? cursor = request.AfterEventId.Length == 0 ? null : request.AfterEventId;
        DateTime? missingSince = null;
        while (true)
        {
            var events = await store.ReadEventsAsync(id, cursor, TimeSpan.FromSeconds(1), cancel);
            foreach (var e in events)
            {
                cursor = e.Id;
                var message = ToEvent(id, e);
                if (e.Status == JobStatus.Done && await store.GetAsync(id, cancel) is { } done) AddImages(message.Images, done);
                await responseStream.WriteAsync(message, cancel);
                if (IsFinished(e.Status)) return;
            }
            if (events.Count > 0) continue;
            // Nothing new: the job may have finished where this replica cannot read its events (written while Redis was away).
            var record = await store.GetAsync(id, cancel);
            if (record is { IsFinished: true })
            {
                var last = new JobEvent
                {
                    EventId = cursor ?? "", JobId = id, State = ToState(record.Status), Step = record.Step, Steps = record.Steps,
                    DoneFraction = record.DoneFraction, Error = record.Error ?? "", Owner = record.Owner ?? "",
                };
                AddImages(last.Images, record);
                await responseStream.WriteAsync(last, cancel);
                return;
            }
            if (record is not null) missingSince = null;
            else if ((missingSince ??= DateTime.UtcNow) + MissingGrace < DateTime.UtcNow)
                throw new RpcException(new Grpc.Core.Status(StatusCode.NotFound, $"job {id} is no longer in the job store (expired, or lost with Redis)"));
        }
    }

    /// <summary>The job when it exists and the caller may see it; null otherwise, so that both answer NOT_FOUND alike.</summary>
    async Task<JobRecord?> VisibleAsync(string id, ServerCallContext context)
    {
        var record = await store.GetAsync(id, context.CancellationToken);
        return record is not null && Callers.MaySee(context.GetHttpContext().User, record) ? record : null;
    }

    static bool IsFinished(JobStatus status) => status is JobStatus.Done or JobStatus.Failed or JobStatus.Cancelled;

    static RpcException NotFound(string id) =>
        new(new Grpc.Core.Status(StatusCode.NotFound, $"no job {id} (unknown, or finished more than the retention ago)"));

    Job ToJob(JobRecord record)
    {
        var job = new Job
        {
            Id = record.Id,
            State = ToState(record.Status),
            QueuePosition = record.Status == JobStatus.Queued ? runner.QueuePosition(record.Id) ?? 0 : 0,
            Step = record.Step,
            Steps = record.Steps,
            DoneFraction = record.DoneFraction,
            Error = record.Error ?? "",
            Owner = record.Owner ?? "",
            Resumptions = record.Resumptions,
            Interruptions = record.Interruptions,
            CreateTime = Timestamp.FromDateTimeOffset(record.CreatedAt),
            UpdateTime = Timestamp.FromDateTimeOffset(record.UpdatedAt),
        };
        AddImages(job.Images, record);
        return job;
    }

    static void AddImages(Google.Protobuf.Collections.RepeatedField<GeneratedImage> images, JobRecord record)
    {
        if (record.Status != JobStatus.Done) return;
        images.AddRange(record.Images.Select(i => new GeneratedImage { Png = ByteString.CopyFrom(i.Png), Seed = i.Seed, ClassLabel = i.Label }));
    }

    static JobEvent ToEvent(string id, FractalMesh.Jobs.JobEvent e) => new()
    {
        EventId = e.Id,
        JobId = id,
        State = ToState(e.Status),
        QueuePosition = e.QueuePosition,
        Step = e.Step,
        Steps = e.Steps,
        DoneFraction = e.DoneFraction,
        PreviewPng = e.PreviewPng is null ? ByteString.Empty : ByteString.CopyFrom(e.PreviewPng),
        Error = e.Error ?? "",
        Owner = e.Owner ?? "",
    };

    static JobState ToState(JobStatus status) => status switch
    {
        JobStatus.Queued => JobState.Queued,
        JobStatus.Running => JobState.Running,
        JobStatus.Done => JobState.Done,
        JobStatus.Failed => JobState.Failed,
        JobStatus.Cancelled => JobState.Cancelled,
        _ => JobState.Unspecified,
    };
}
