using System.Diagnostics;
using LLark.Common;
using LLark.Encoder.Engine.Model;

namespace LLark.Encoder.Engine.Serving;

/// <summary>What the worker reports, on its own thread: each batch's size and time, and batches that fail.</summary>
public interface IEncodeObserver
{
    void Encoded(int clips, TimeSpan elapsed);

    void Failed(Exception exception, int clips);
}

/// <summary>Called on the worker's thread when clips are waiting, before it takes them; while it blocks, clips queue up.</summary>
public interface IEncodeGate
{
    /// <param name="stopping">Cancelled when the worker stops; a gate that blocks returns then.</param>
    void BeforeBatch(CancellationToken stopping);
}

/// <summary>
/// The one thread that runs the model. Requests wait in a bounded queue; each turn takes every clip waiting (up to
/// the batch size) and encodes them in one <see cref="IAudioEncoder.EmbedBatch"/> call (for Jukebox's padded path, a
/// single forward pass). A clip whose caller has gone is dropped before the pass; a
/// pass whose callers have all gone is cancelled between blocks.
/// </summary>
public sealed class EncodeWorker : IDisposable
{
    private readonly IAudioEncoder encoder;
    private readonly int maxQueued;
    private readonly int maxBatch;
    private readonly IEncodeObserver? observer;
    private readonly Queue<Job> queue = new();
    private readonly object gate = new();
    private readonly CancellationTokenSource stopping = new();
    private readonly Thread thread;
    private bool stopped;
    private readonly IEncodeGate? batchGate;
    private double secondsPerBatch = 1;

    /// <summary>Starts the worker thread; <paramref name="gate"/>, if any, is asked before each batch (none in service).</summary>
    public EncodeWorker(IAudioEncoder encoder, int maxQueued, int maxBatch, IEncodeObserver? observer = null, IEncodeGate? gate = null)
    {
        this.encoder = encoder;
        this.maxQueued = maxQueued;
        this.maxBatch = maxBatch;
        this.observer = observer;
        batchGate = gate;
        thread = new Thread(Run) { IsBackground = true, Name = "llark-encoder" };
        thread.Start();
    }

    public int QueueDepth
    {
        get { lock (gate) return queue.Count; }
    }

    /// <summary>Queues one clip (mono, at the model's rate, peak-normalised); throws <see cref="QueueFullException"/> past the limit.</summary>
    public Task<AudioEmbedding> SubmitAsync(float[] samples, CancellationToken ct)
    {
        var job = new Job(samples, ct);
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(stopped, this);
            if (queue.Count >= maxQueued) DropCancelledLocked();
            if (queue.Count >= maxQueued)
            {
                double seconds = Math.Max(0.1, (queue.Count / maxBatch + 1) * secondsPerBatch);
                var retry = TimeSpan.FromSeconds(seconds);
                throw new QueueFullException($"the encoder queue is full ({queue.Count} clips waiting); retry after {retry.TotalMilliseconds:F0} ms", retry);
            }
            queue.Enqueue(job);
            Monitor.PulseAll(gate);
        }
        return job.Completion.Task;
    }

    private void DropCancelledLocked()
    {
        int count = queue.Count;
        for (int i = 0; i < count; i++)
        {
            Job job = queue.Dequeue();
            if (job.Token.IsCancellationRequested) job.Completion.TrySetCanceled(job.Token);
            else queue.Enqueue(job);
        }
    }

    private void Run()
    {
        while (true)
        {
            var batch = new List<Job>(maxBatch);
            lock (gate)
            {
                while (!stopped && queue.Count == 0) Monitor.Wait(gate);
                if (stopped) break;
            }
            batchGate?.BeforeBatch(stopping.Token);
            lock (gate)
            {
                if (stopped) break;
                while (batch.Count < maxBatch && queue.TryDequeue(out Job? job))
                {
                    if (job.Token.IsCancellationRequested) job.Completion.TrySetCanceled(job.Token);
                    else batch.Add(job);
                }
            }
            if (batch.Count > 0) Encode(batch);
        }
    }

    private void Encode(List<Job> batch)
    {
        // The pass stops early only when no caller is left to want any of its clips (or the host stops).
        using var abandoned = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
        int waiting = batch.Count;
        var registrations = batch.Select(j => j.Token.Register(() =>
        {
            if (Interlocked.Decrement(ref waiting) == 0) abandoned.Cancel();
        })).ToList();
        var clock = Stopwatch.StartNew();
        try
        {
            IReadOnlyList<AudioEmbedding> results = encoder.EmbedBatch([.. batch.Select(j => j.Samples)], abandoned.Token);
            TimeSpan elapsed = clock.Elapsed;
            observer?.Encoded(batch.Count, elapsed);
            secondsPerBatch = 0.8 * secondsPerBatch + 0.2 * elapsed.TotalSeconds;
            for (int i = 0; i < batch.Count; i++) batch[i].Completion.TrySetResult(results[i]);
        }
        catch (OperationCanceledException) when (abandoned.IsCancellationRequested)
        {
            foreach (Job job in batch)
            {
                if (stopping.IsCancellationRequested) job.Completion.TrySetException(new ObjectDisposedException(nameof(EncodeWorker), "the encoder is shutting down"));
                else job.Completion.TrySetCanceled(job.Token);
            }
        }
        catch (Exception e)
        {
            observer?.Failed(e, batch.Count);
            foreach (Job job in batch) job.Completion.TrySetException(e);
        }
        finally
        {
            foreach (CancellationTokenRegistration r in registrations) r.Dispose();
        }
    }

    /// <summary>Stops after the pass in progress (cancelled at its next block); clips still queued fail with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        lock (gate)
        {
            if (stopped) return;
            stopped = true;
            Monitor.PulseAll(gate);
        }
        stopping.Cancel();
        thread.Join();
        lock (gate)
        {
            while (queue.TryDequeue(out Job? job))
                job.Completion.TrySetException(new ObjectDisposedException(nameof(EncodeWorker), "the encoder is shutting down"));
        }
        stopping.Dispose();
    }

    private sealed class Job(float[] samples, CancellationToken token)
    {
        public float[] Samples { get; } = samples;

        public CancellationToken Token { get; } = token;

        public TaskCompletionSource<AudioEmbedding> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
