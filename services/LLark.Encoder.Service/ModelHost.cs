using System.Diagnostics;
using Grpc.Core;
using LLark.Checkpoints;
using LLark.Encoder.Engine;
using LLark.Encoder.Engine.Model;
using LLark.Encoder.Service.Serving;
using LLark.ServiceDefaults;
using Microsoft.Extensions.Options;
using TorchSharp;

namespace LLark.Encoder.Service;

/// <summary>
/// Loads the encoder in the background after start (health says NOT_SERVING meanwhile), then owns it and its worker
/// for the life of the process. Weights that cannot be loaded stop the host with exit code 3.
/// </summary>
public sealed class ModelHost(IOptions<EncoderServiceOptions> options, ServingStatus serving, EncoderMetrics metrics,
    IHostApplicationLifetime lifetime, ILogger<ModelHost> logger) : BackgroundService
{
    private volatile Loaded? loaded;

    public sealed record Loaded(ClipEmbedder Embedder, EncodeWorker Worker);

    /// <summary>The model, or UNAVAILABLE while it loads.</summary>
    public Loaded Ready() => loaded ?? throw new RpcException(new Status(StatusCode.Unavailable, "the encoder model is still loading; retry shortly"));

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => Task.Run(() =>
    {
        EncoderServiceOptions o = options.Value;
        string dtype = RunTimeDTypes.ShortName(ParseDType(o.DType));
        Log.ModelLoading(logger, o.ModelPath, dtype, o.Device);
        var clock = Stopwatch.StartNew();
        try
        {
            ExtractionPath path = o.ExtractionPath.Equals("jukemirlib", StringComparison.OrdinalIgnoreCase) ? ExtractionPath.Jukemirlib : ExtractionPath.LLarkPadded;
            IAudioEncoder family = AudioEncoderLoader.Load(o.ModelPath, new AudioEncoderOptions
            {
                Fps = o.Fps, Layers = o.Layers, MatrixType = ParseDType(o.DType), Device = new torch.Device(o.Device), Path = path,
                ModelName = o.ModelName, BatchSize = o.MaxBatchSize,
            }, stoppingToken);
            var worker = new EncodeWorker(family, o.MaxQueuedRequests, o.MaxBatchSize, metrics, logger);
            metrics.QueueDepth = () => worker.QueueDepth;
            loaded = new Loaded(new ClipEmbedder(family), worker);
            Log.ModelLoaded(logger, family.ModelId, clock.Elapsed.TotalSeconds, family.Width,
                (double)family.ContextSamples / family.SampleRate, o.MaxBatchSize);
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

    internal static torch.ScalarType ParseDType(string name) => RunTimeDTypes.Parse(name, RunTimeDTypes.Encoder);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        serving.Set(false);
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        if (loaded is { } l)
        {
            loaded = null;
            metrics.QueueDepth = () => 0;
            l.Worker.Dispose();
            l.Embedder.Encoder.Dispose();
        }
    }
}
