using System.Diagnostics;
using Grpc.Core;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Multimodal;
using LLark.Language.Engine.Serving;
using LLark.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace LLark.Language.Service;

/// <summary>
/// Loads the checkpoint in the background after start (health says NOT_SERVING meanwhile), then owns the model and
/// its scheduler for the life of the process. A checkpoint that cannot be loaded stops the host with exit code 3.
/// </summary>
public sealed class ModelHost(IOptions<LanguageServiceOptions> options, ServingStatus serving, IHostApplicationLifetime lifetime,
    ILogger<ModelHost> logger) : BackgroundService
{
    private volatile Loaded? loaded;

    public sealed record Loaded(LLarkModel Model, BatchScheduler Scheduler, string ModelId);

    /// <summary>The model, or UNAVAILABLE while it loads.</summary>
    public Loaded Ready() => loaded ?? throw new RpcException(new Status(StatusCode.Unavailable, "the model is still loading; retry shortly"));

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => Task.Run(() =>
    {
        LanguageServiceOptions o = options.Value;
        Log.ModelLoading(logger, o.ModelPath, o.DType, o.Device);
        var clock = Stopwatch.StartNew();
        try
        {
            var load = new LlamaLoadOptions { DType = LlamaLoader.ParseDType(o.DType), Device = new TorchSharp.torch.Device(o.Device) };
            LLarkModel model = LLarkModel.Load(o.ModelPath, load, stoppingToken);
            var scheduler = new BatchScheduler(model.Llama, new SchedulerOptions
            {
                MaxBatchSize = o.MaxBatchSize,
                MaxQueuedRequests = o.MaxQueuedRequests,
                ContextLength = o.ContextLength,
                PrefillThreads = o.TorchThreads,
            });
            string id = o.ModelId ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(o.ModelPath)));
            loaded = new Loaded(model, scheduler, id);
            long parameters = model.Llama.parameters().Sum(p => p.NumberOfElements);
            double seconds = clock.Elapsed.TotalSeconds;
            Log.ModelLoaded(logger, id, seconds, parameters, scheduler.ContextLength, scheduler.MaxBatchSize);
            serving.Set(true);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            Log.ModelLoadFailed(logger, e, o.ModelPath);
            lifetime.StopOnceStarted(exitCode: 3);
        }
    }, stoppingToken);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        serving.Set(false);
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        if (loaded is { } l)
        {
            loaded = null;
            l.Scheduler.Dispose();
            l.Model.Dispose();
        }
    }
}
