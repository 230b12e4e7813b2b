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
public sealed class EmbeddingService(ModelHost host, EmbeddingCache cache, IOptions<EncoderServiceOptions> options, ILogger<EmbeddingService> logger)
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
        PreparedClip prepared = await PrepareAsync(audio, model.Embedder, ct).ConfigureAwait(false);
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

    private async Task<PreparedClip> PrepareAsync(byte[] audio, ClipEmbedder embedder, CancellationToken ct)
    {
        EncoderServiceOptions o = options.Value;
        var limits = new AudioLimits { MaxBytes = o.MaxAudioBytes, MaxDuration = TimeSpan.FromSeconds(o.MaxAudioSeconds) };
        await decoders.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await Task.Run(() => embedder.Prepare(audio, limits), ct).ConfigureAwait(false);
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
