using System.Diagnostics;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Multimodal;
using LLark.Language.Engine.Serving;
using LLark.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace LLark.Language.Service;

/// <summary>
/// Loads the LLark checkpoint and owns it and its scheduler for the life of the process. A registered
/// <see cref="IDecodeStepHook"/> goes to the scheduler; the service registers none.
/// </summary>
public sealed class ModelHost(IOptions<LanguageServiceOptions> options, ServingStatus serving, IHostApplicationLifetime lifetime,
    ILogger<ModelHost> logger, IDecodeStepHook? stepHook = null) : ModelHost<ModelHost.Loaded>("the model", serving, lifetime)
{
    public sealed record Loaded(LLarkModel Model, BatchScheduler Scheduler, string ModelId, PrefixCache? PrefixCache);

    protected override Loaded Load(CancellationToken stoppingToken)
    {
        LanguageServiceOptions o = options.Value;
        Log.ModelLoading(logger, o.ModelPath, o.DType, o.Device);
        var clock = Stopwatch.StartNew();
        var load = new LlamaLoadOptions
        {
            DType = LlamaLoader.ParseDType(o.DType), Device = new TorchSharp.torch.Device(o.Device), Weights = WeightFormats.Parse(o.Weights),
        };
        LLarkModel model = LLarkModel.Load(o.ModelPath, load, stoppingToken);
        // Before the first request, not in it: a one-shot load (the CLI) has nothing to gain from it.
        model.Llama.WarmUp();
        PrefixCache? prefixCache = o.PrefixCacheBytes > 0 ? new PrefixCache(o.PrefixCacheBytes, o.PrefixCacheBlockTokens) : null;
        var scheduler = new BatchScheduler(model.Llama, new SchedulerOptions
        {
            MaxBatchSize = o.MaxBatchSize,
            MaxQueuedRequests = o.MaxQueuedRequests,
            ContextLength = o.ContextLength,
            PrefillThreads = o.TorchThreads,
        }, stepHook, prefixCache);
        string id = o.ModelId ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(o.ModelPath)));
        long parameters = model.Llama.Config.ParameterCount;
        double seconds = clock.Elapsed.TotalSeconds;
        Log.ModelLoaded(logger, id, seconds, parameters, scheduler.ContextLength, scheduler.MaxBatchSize);
        return new Loaded(model, scheduler, id, prefixCache);
    }

    protected override void LogLoadFailed(Exception exception) => Log.ModelLoadFailed(logger, exception, options.Value.ModelPath);

    protected override void Unload(Loaded model)
    {
        model.Scheduler.Dispose();
        model.PrefixCache?.Dispose();
        model.Model.Dispose();
    }
}
