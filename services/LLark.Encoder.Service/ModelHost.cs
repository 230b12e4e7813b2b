using System.Diagnostics;
using LLark.Checkpoints;
using LLark.Encoder.Engine;
using LLark.Encoder.Engine.Model;
using LLark.Encoder.Engine.Serving;
using LLark.Encoder.Service.Serving;
using LLark.ServiceDefaults;
using Microsoft.Extensions.Options;
using TorchSharp;

namespace LLark.Encoder.Service;

/// <summary>
/// Loads the encoder and owns it and its worker for the life of the process. A registered <see cref="IEncodeGate"/>
/// goes to the worker; the service registers none.
/// </summary>
public sealed class ModelHost(IOptions<EncoderServiceOptions> options, ServingStatus serving, EncoderMetrics metrics,
    IHostApplicationLifetime lifetime, ILogger<ModelHost> logger, IEncodeGate? gate = null)
    : ModelHost<ModelHost.Loaded>("the encoder model", serving, lifetime)
{
    public sealed record Loaded(ClipEmbedder Embedder, EncodeWorker Worker);

    protected override Loaded Load(CancellationToken stoppingToken)
    {
        EncoderServiceOptions o = options.Value;
        string dtype = RunTimeDTypes.ShortName(ParseDType(o.DType));
        Log.ModelLoading(logger, o.ModelPath, dtype, o.Device);
        var clock = Stopwatch.StartNew();
        ExtractionPath path = o.ExtractionPath.Equals("jukemirlib", StringComparison.OrdinalIgnoreCase) ? ExtractionPath.Jukemirlib : ExtractionPath.LLarkPadded;
        IAudioEncoder family = AudioEncoderLoader.Load(o.ModelPath, new AudioEncoderOptions
        {
            Fps = o.Fps, Layers = o.Layers, MatrixType = ParseDType(o.DType), Device = new torch.Device(o.Device), Path = path,
            ModelName = o.ModelName, BatchSize = o.MaxBatchSize,
        }, stoppingToken);
        var worker = new EncodeWorker(family, o.MaxQueuedRequests, o.MaxBatchSize, new EncodeReporter(metrics, logger), gate);
        metrics.QueueDepth = () => worker.QueueDepth;
        Log.ModelLoaded(logger, family.ModelId, clock.Elapsed.TotalSeconds, family.Width,
            (double)family.ContextSamples / family.SampleRate, o.MaxBatchSize);
        return new Loaded(new ClipEmbedder(family), worker);
    }

    protected override void LogLoadFailed(Exception exception) => Log.ModelLoadFailed(logger, exception, options.Value.ModelPath);

    internal static torch.ScalarType ParseDType(string name) => RunTimeDTypes.Parse(name, RunTimeDTypes.Encoder);

    protected override void Unload(Loaded model)
    {
        metrics.QueueDepth = () => 0;
        model.Worker.Dispose();
        model.Embedder.Encoder.Dispose();
    }
}
