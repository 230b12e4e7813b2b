using Grpc.Core;
using Microsoft.Extensions.Hosting;

namespace LLark.ServiceDefaults;

/// <summary>
/// Loads a host's model in the background after start (health says NOT_SERVING meanwhile), then owns it for the
/// life of the process. A model that cannot be loaded stops the host with exit code 3. Refusals name the model by
/// its description, e.g. "the encoder model".
/// </summary>
public abstract class ModelHost<TModel>(string description, ServingStatus serving, IHostApplicationLifetime lifetime) : BackgroundService
    where TModel : class
{
    private volatile TModel? loaded;
    private volatile bool failed;

    /// <summary>The model; UNAVAILABLE, so that callers retry elsewhere, while it loads or after it failed to.</summary>
    public TModel Ready() => loaded ?? throw new RpcException(new Status(StatusCode.Unavailable, failed
        ? $"{description} failed to load; this replica is stopping"
        : $"{description} is still loading; retry shortly"));

    /// <summary>Loads the model on a pool thread; logs its own progress.</summary>
    protected abstract TModel Load(CancellationToken stoppingToken);

    protected abstract void LogLoadFailed(Exception exception);

    /// <summary>Frees the model at stop, after health has gone NOT_SERVING and new calls are refused.</summary>
    protected abstract void Unload(TModel model);

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => Task.Run(() =>
    {
        try
        {
            loaded = Load(stoppingToken);
            serving.Set(true);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            failed = true;
            LogLoadFailed(e);
            lifetime.StopOnceStarted(exitCode: 3);
        }
    }, stoppingToken);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        serving.Set(false);
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        if (loaded is { } model)
        {
            loaded = null;
            Unload(model);
        }
    }
}
