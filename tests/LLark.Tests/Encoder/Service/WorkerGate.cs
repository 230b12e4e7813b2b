using LLark.Encoder.Engine.Serving;
using LLark.Encoder.Service.Serving;

namespace LLark.Tests.Encoder.Service;

/// <summary>While held, clips queue up and nothing is encoded, so a test can fill the queue deterministically.</summary>
internal sealed class WorkerGate : IEncodeGate, IDisposable
{
    private readonly ManualResetEventSlim open = new(initialState: true);

    public void Hold(bool hold)
    {
        if (hold) open.Reset();
        else open.Set();
    }

    public void BeforeBatch(CancellationToken stopping)
    {
        try
        {
            open.Wait(stopping);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    public void Dispose() => open.Dispose();
}
