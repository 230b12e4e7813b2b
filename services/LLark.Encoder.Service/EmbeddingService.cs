using System.Diagnostics;
using LLark.Common;
using LLark.Encoder.Engine;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Engine.Model;
using LLark.Encoder.Service.Caching;
using LLark.Encoder.Service.Serving;
using LLark.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace LLark.Encoder.Service;

/// <summary>No tier holds the id.</summary>
public sealed class EmbeddingNotFoundException(string id)
    : Exception($"no embedding '{id}' in any cache tier (never made here, deleted, or evicted): embed the clip again")
{
    public string Id { get; } = id;
}

public sealed record EmbedResult(StoredEmbedding Embedding, bool Cached);

/// <summary>
/// Audio to embedding: decode and resample on the request's thread (bounded to one decode per core), hash the
/// samples into the content address, answer from the cache, or join the one encode in flight for that address, or
/// start it. An encode continues while any of its callers still waits; the last one to leave cancels it.
/// </summary>
public sealed class EmbeddingService(ModelHost host, EmbeddingCache cache, EncoderMetrics metrics, IOptions<EncoderServiceOptions> options,
    ILogger<EmbeddingService> logger)
    : IDisposable
{
    private readonly SemaphoreSlim decoders = new(Environment.ProcessorCount);
    private readonly Dictionary<string, Flight> flights = new(StringComparer.Ordinal);
    private readonly Lock gate = new();

    public async Task<EmbedResult> EmbedAsync(byte[] audio, string? filename, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(audio);
        ModelHost.Loaded model = host.Ready();
        var clock = Stopwatch.StartNew();
        using Activity? span = EncoderMetrics.Traces.StartActivity("encode");
        PreparedClip prepared = await DecodeAsync(() => model.Embedder.Prepare(audio, Limits()), ct).ConfigureAwait(false);
        return await EmbedAsync(prepared, model, filename, clock, span, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// An upload that arrives in pieces (<see cref="AppendAsync"/>, then <see cref="EmbedAsync(AudioUpload, string?, CancellationToken)"/>):
    /// a WAV is decoded as it arrives, so the service never holds the whole file.
    /// </summary>
    /// <param name="sizeHint">The size the sender announced, if any.</param>
    public AudioUpload StartUpload(long sizeHint) => host.Ready().Embedder.StartUpload(Limits(), sizeHint);

    /// <summary>Decodes what the next piece allows; a decode slot is held for the piece only, so a slow sender holds none while it sends.</summary>
    public async Task AppendAsync(AudioUpload upload, ReadOnlyMemory<byte> bytes, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(upload);
        await decoders.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            upload.Append(bytes.Span);
        }
        finally
        {
            decoders.Release();
        }
    }

    /// <summary>The embedding of a complete upload; records the most of its bytes the service held at once.</summary>
    public async Task<EmbedResult> EmbedAsync(AudioUpload upload, string? filename, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(upload);
        ModelHost.Loaded model = host.Ready();
        var clock = Stopwatch.StartNew();
        using Activity? span = EncoderMetrics.Traces.StartActivity("encode");
        PreparedClip prepared;
        try
        {
            prepared = await DecodeAsync(() => model.Embedder.Prepare(upload.Complete()), ct).ConfigureAwait(false);
        }
        finally
        {
            metrics.UploadHeld(upload.PeakHeldBytes, upload.Incremental);
        }
        return await EmbedAsync(prepared, model, filename, clock, span, ct).ConfigureAwait(false);
    }

    private async Task<EmbedResult> EmbedAsync(PreparedClip prepared, ModelHost.Loaded model, string? filename, Stopwatch clock, Activity? span, CancellationToken ct)
    {
        string id = prepared.EmbeddingId;
        EmbedResult result;
        if (await cache.GetAsync(id, ct).ConfigureAwait(false) is { } hit)
        {
            result = new EmbedResult(hit.Entry, Cached: true);
            Log.Embedded(logger, id, filename ?? "", hit.Entry.Frames, hit.Entry.AudioSeconds, hit.Tier, clock.Elapsed.TotalMilliseconds);
        }
        else
        {
            result = new EmbedResult(await JoinAsync(id, prepared, model, ct).ConfigureAwait(false), Cached: false);
            Log.Embedded(logger, id, filename ?? "", result.Embedding.Frames, result.Embedding.AudioSeconds, "encoded", clock.Elapsed.TotalMilliseconds);
        }
        span?.SetTag("llark.embedding_id", id).SetTag("llark.cached", result.Cached).SetTag("llark.frames", result.Embedding.Frames);
        return result;
    }

    /// <summary>The embedding from the first tier that holds it; <see cref="EmbeddingNotFoundException"/> otherwise.</summary>
    public async Task<StoredEmbedding> GetAsync(string id, CancellationToken ct)
    {
        CheckId(id);
        return (await cache.GetAsync(id, ct).ConfigureAwait(false))?.Entry ?? throw new EmbeddingNotFoundException(id);
    }

    public Task<bool> DeleteAsync(string id)
    {
        CheckId(id);
        return cache.RemoveAsync(id);
    }

    private static void CheckId(string id)
    {
        if (id.Length == 0) throw new InvalidRequestException("embedding_id", "an embedding id is required");
        if (!ClipEmbedder.IsWellFormedId(id))
            throw new InvalidRequestException("embedding_id", $"'{Shorten(id)}' is not an id this service issues (64 lowercase hex digits)");
    }

    private static string Shorten(string s) => s.Length <= 80 ? s : s[..80] + "...";

    private AudioLimits Limits()
    {
        EncoderServiceOptions o = options.Value;
        return new AudioLimits { MaxBytes = o.MaxAudioBytes, MaxDuration = TimeSpan.FromSeconds(o.MaxAudioSeconds) };
    }

    private async Task<PreparedClip> DecodeAsync(Func<PreparedClip> decode, CancellationToken ct)
    {
        await decoders.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await Task.Run(decode, ct).ConfigureAwait(false);
        }
        finally
        {
            decoders.Release();
        }
    }

    private async Task<StoredEmbedding> JoinAsync(string id, PreparedClip prepared, ModelHost.Loaded model, CancellationToken ct)
    {
        Flight flight;
        lock (gate)
        {
            if (!flights.TryGetValue(id, out flight!) || flight.Cancel.IsCancellationRequested)
            {
                // A flight that finished a moment ago has already filled the memory tier.
                if (cache.PeekMemory(id) is { } done) return done;
                flight = new Flight();
                flights[id] = flight;
                Flight started = flight;
                flight.Task = Task.Run(() => ComputeAsync(id, prepared, model, started), CancellationToken.None);
            }
            flight.Waiters++;
        }
        try
        {
            return await flight.Task.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            lock (gate)
            {
                if (--flight.Waiters == 0) flight.Cancel.Cancel();
            }
            throw;
        }
    }

    private async Task<StoredEmbedding> ComputeAsync(string id, PreparedClip prepared, ModelHost.Loaded model, Flight flight)
    {
        try
        {
            AudioEmbedding e = await model.Worker.SubmitAsync(prepared.Samples, flight.Cancel.Token).ConfigureAwait(false);
            ClipFrames frames = model.Embedder.Describe(prepared, e);
            var stored = new StoredEmbedding(id, frames.Values, frames.Frames, frames.Width, frames.Fps, frames.EffectiveFps, frames.EncoderId,
                frames.AudioSeconds);
            // Stored whatever happens to the callers now: the work is done and the next caller should not redo it.
            await cache.PutAsync(stored, CancellationToken.None).ConfigureAwait(false);
            return stored;
        }
        finally
        {
            lock (gate)
            {
                if (flights.TryGetValue(id, out Flight? current) && ReferenceEquals(current, flight)) flights.Remove(id);
            }
        }
    }

    public void Dispose() => decoders.Dispose();

    private sealed class Flight
    {
        public Task<StoredEmbedding> Task { get; set; } = null!;

        /// <summary>Cancelled when the last waiter leaves; never disposed, since a late waiter may still read it.</summary>
        public CancellationTokenSource Cancel { get; } = new();

        public int Waiters { get; set; }
    }
}
