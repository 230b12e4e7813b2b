using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using LLark.Common;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Language.Engine.Serving;

/// <summary>Scheduler limits.</summary>
public sealed record SchedulerOptions
{
    /// <summary>Sequences decoded together at most (slots of the batch KV cache); default 8.</summary>
    public int MaxBatchSize { get; init; } = 8;

    /// <summary>Requests waiting for a slot at most; past it, submissions are refused. Default 64.</summary>
    public int MaxQueuedRequests { get; init; } = 64;

    /// <summary>Positions per sequence (prompt + answer); 0 (default) means the model's max_position_embeddings.</summary>
    public int ContextLength { get; init; }

    /// <summary>
    /// libtorch threads for a prefill that libtorch runs (see <see cref="TorchThreadScope"/>; a float32 CPU model prefills with
    /// the managed kernels instead); 0 means libtorch's default. Default 1.
    /// </summary>
    public int PrefillThreads { get; init; } = 1;
}

/// <summary>
/// The updates of one submitted generation, in order. Enumerate it to wait for each; <see cref="TryRead"/> takes those
/// already made without waiting, so a reader that fell behind can send several tokens in one message.
/// </summary>
public sealed class GenerationFeed : IAsyncEnumerable<GenerationUpdate>
{
    private readonly ChannelReader<GenerationUpdate> reader;
    private readonly CancellationToken cancellation;

    internal GenerationFeed(ChannelReader<GenerationUpdate> reader, CancellationToken cancellation)
    {
        this.reader = reader;
        this.cancellation = cancellation;
    }

    /// <summary>Waits for each update in turn; cancelled by the submission's token or <paramref name="cancellationToken"/>.</summary>
    public async IAsyncEnumerator<GenerationUpdate> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellation, cancellationToken);
        while (await reader.WaitToReadAsync(linked.Token).ConfigureAwait(false))
        {
            while (reader.TryRead(out GenerationUpdate? update)) yield return update;
        }
    }

    /// <summary>The next update if it is already made; false (at once) if it is not, or the stream has ended.</summary>
    public bool TryRead([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out GenerationUpdate? update) => reader.TryRead(out update);
}

/// <summary>Called on the scheduler's thread after every decode step, before the next one starts.</summary>
public interface IDecodeStepHook
{
    void AfterStep();
}

/// <summary>
/// Continuous batching over one model: a single worker thread owns the model and a slot KV cache; new requests
/// join the running batch at the next step (after their prefill), finished and cancelled ones leave it at once,
/// and each request streams its updates through its own channel. Request threads never run tensors.
/// </summary>
public sealed class BatchScheduler : IDisposable
{
    public const string MeterName = "LLark.Language";

    /// <summary>
    /// The scheduler's spans under the meter's name: queue wait, prefill and decode of each request, children of the
    /// span that submitted it (its gRPC call), written when the request ends because one worker thread runs them all.
    /// </summary>
    public static readonly ActivitySource Traces = new(MeterName);

    private readonly LlamaForCausalLM model;
    private readonly SchedulerOptions options;
    private readonly IDecodeStepHook? stepHook;
    private readonly PrefixCache? prefixCache;
    private readonly BlockingCollection<Job> queue;
    private readonly List<Job> active = [];
    private readonly BatchKvCache cache;
    // What each free slot still holds from the sequence that last ran in it (its key and the positions written), so
    // that a request about the same clip reuses that state in place and copies only what it lacks from the cache.
    private readonly (PromptKey? Key, int Length)[] held;
    private readonly Thread worker;
    private readonly CancellationTokenSource stopping = new();
    private readonly Meter meter = new(MeterName);
    private readonly Counter<long> generatedTokens;
    private readonly Counter<long> finished;
    private readonly Histogram<double> timeToFirstToken;
    private readonly Histogram<double> genAiRequestDuration;
    private readonly Histogram<double> genAiTimePerOutputToken;
    private readonly Histogram<double> queueWait;
    private readonly Counter<long> cacheFailures;
    private double averageStepSeconds = 0.05;
    private float[]? firstLogits;

    /// <summary>
    /// Starts the worker thread; <paramref name="stepHook"/>, if any, runs after every decode step (none in service).
    /// With <paramref name="prefixCache"/> (which the caller owns), a request submitted with a <see cref="PromptKey"/>
    /// takes the cached state of its prompt's longest cached prefix and prefills only the rest, and its prompt (after the
    /// prefill) and its prompt and answer (when it finishes) are cached for the requests after it.
    /// </summary>
    public BatchScheduler(LlamaForCausalLM model, SchedulerOptions? options = null, IDecodeStepHook? stepHook = null,
        PrefixCache? prefixCache = null)
    {
        this.model = model;
        this.stepHook = stepHook;
        this.prefixCache = prefixCache;
        this.options = options ??= new SchedulerOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxBatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxQueuedRequests, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(options.PrefillThreads);
        ContextLength = options.ContextLength > 0 ? Math.Min(options.ContextLength, model.Config.MaxPositionEmbeddings)
            : model.Config.MaxPositionEmbeddings;
        queue = new BlockingCollection<Job>(options.MaxQueuedRequests);
        cache = model.NewBatchCache(options.MaxBatchSize, ContextLength);
        held = new (PromptKey?, int)[options.MaxBatchSize];
        generatedTokens = meter.CreateCounter<long>("llark.language.generated_tokens", "{token}", "Tokens generated");
        finished = meter.CreateCounter<long>("llark.language.requests", "{request}", "Finished generations by finish reason");
        timeToFirstToken = meter.CreateHistogram<double>("llark.language.time_to_first_token", "s", "From joining the batch to the first token",
            tags: null, advice: LatencyBuckets.Seconds);
        queueWait = meter.CreateHistogram<double>("llark.language.queue_wait", "s", "From submission to joining the batch",
            tags: null, advice: LatencyBuckets.Seconds);
        // OpenTelemetry's GenAI semantic conventions for model servers, beside the project's own names, so dashboards
        // made for other servers read these too.
        genAiRequestDuration = meter.CreateHistogram<double>("gen_ai.server.request.duration", "s",
            "From submission to the last token", tags: null, advice: LatencyBuckets.Seconds);
        genAiTimePerOutputToken = meter.CreateHistogram<double>("gen_ai.server.time_per_output_token", "s",
            "Decode time per token after the first", tags: null, advice: LatencyBuckets.Seconds);
        cacheFailures = meter.CreateCounter<long>("llark.language.prefix_cache.failures", "{insert}",
            "Prefixes that could not be cached (the copy failed); the requests went on");
        meter.CreateObservableGauge("llark.language.queue_depth", () => QueueDepth, "{request}", "Requests waiting for a slot");
        meter.CreateObservableGauge("llark.language.active_sequences", () => ActiveSequences, "{sequence}", "Sequences in the running batch");
        worker = new Thread(Run) { IsBackground = true, Name = "llark-scheduler" };
        worker.Start();
    }

    public int ContextLength { get; }

    public int MaxBatchSize => options.MaxBatchSize;

    public int QueueDepth => queue.Count;

    public int ActiveSequences { get; private set; }

    /// <summary>
    /// Queues a generation and returns its updates as they are made. Takes ownership of
    /// <paramref name="promptEmbeds"/> [1, T, hidden]. Throws at once (before any update) for bad settings, a prompt
    /// too long for the context, or a full queue. Cancelling <paramref name="cancellationToken"/> ends the sequence
    /// within one decode step; its final update then says <see cref="FinishReason.Cancelled"/> if still read.
    /// </summary>
    public GenerationFeed Submit(Tensor promptEmbeds, IReadOnlyList<int> promptIds, ITokenTextDecoder text,
        GenerationOptions generation, CancellationToken cancellationToken = default) =>
        Submit(promptEmbeds, promptIds, text, generation, null, cancellationToken);

    /// <summary>
    /// <see cref="Submit(Tensor, IReadOnlyList{int}, ITokenTextDecoder, GenerationOptions, CancellationToken)"/> with
    /// <paramref name="prefixKey"/>, what each prompt position holds, for the prefix cache; without it (or without a
    /// cache) the prompt is prefilled whole and not cached.
    /// </summary>
    public GenerationFeed Submit(Tensor promptEmbeds, IReadOnlyList<int> promptIds, ITokenTextDecoder text,
        GenerationOptions generation, PromptKey? prefixKey, CancellationToken cancellationToken = default)
    {
        try
        {
            int promptLength = (int)promptEmbeds.shape[1];
            if (promptLength == 0) throw new InvalidRequestException("prompt", "the prompt is empty");
            if (promptLength >= ContextLength) throw new ContextLengthException(promptLength + 1, ContextLength);
            if (prefixKey is not null && prefixKey.Positions.Count != promptLength)
                throw new ArgumentException($"the prefix key names {prefixKey.Positions.Count} positions for a prompt of {promptLength}", nameof(prefixKey));
            var job = new Job(promptEmbeds, new GenerationSequence(promptIds, promptLength, model.Config.EosTokenIds, text, generation),
                prefixCache is null ? null : prefixKey, cancellationToken);
            ObjectDisposedException.ThrowIf(stopping.IsCancellationRequested, this);
            if (!queue.TryAdd(job))
            {
                // One batch's worth of steps is roughly when a slot frees up.
                var retry = TimeSpan.FromSeconds(Math.Clamp(averageStepSeconds * 32, 0.05, 30));
                throw new QueueFullException(
                    $"the generation queue is full ({queue.Count} requests waiting); retry in {retry.TotalMilliseconds:F0} ms", retry);
            }
            return new GenerationFeed(job.Output.Reader, cancellationToken);
        }
        catch
        {
            promptEmbeds.Dispose();
            throw;
        }
    }

    private void Run()
    {
        var logits = Array.Empty<float>();
        var ids = Array.Empty<int>();
        var updates = Array.Empty<GenerationUpdate>();
        int vocab = model.Config.VocabSize;
        bool managed = model.DecodesInManagedCode;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                Admit();
                if (active.Count == 0) continue;
                DropCancelled();
                if (active.Count == 0) continue;

                int n = active.Count;
                long started = Stopwatch.GetTimestamp();
                if (logits.Length < n * vocab) logits = new float[n * vocab];
                if (ids.Length < n) ids = new int[options.MaxBatchSize];
                for (int i = 0; i < n; i++) ids[i] = active[i].Sequence.LastToken;
                // A float32 CPU model decodes every n in managed code (each weight read once for all n rows, no libtorch
                // threads involved); otherwise libtorch runs single-threaded for small batches and with its GEMM threads above.
                using (managed || n <= 4 ? TorchThreadScope.ForDecode() : default)
                {
                    if (n == 1 && !managed) model.DecodeToken(ids[0], cache.Slot(0), logits.AsSpan(0, vocab));
                    else model.DecodeBatch(ids.AsSpan(0, n), cache, logits.AsSpan(0, n * vocab));
                }
                averageStepSeconds = 0.9 * averageStepSeconds + 0.1 * Stopwatch.GetElapsedTime(started).TotalSeconds;
                if (updates.Length < n) updates = new GenerationUpdate[options.MaxBatchSize];
                AcceptAll(n, logits, updates);
                for (int i = 0; i < n; i++) Publish(active[i], updates[i]);
                Compact();
                stepHook?.AfterStep();
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // A failed step must not take the service down: fail the sequences it held and carry on.
                foreach (Job job in active) job.Output.Writer.TryComplete(e);
                for (int i = 0; i < active.Count; i++) cache.Slot(i).Reset();
                active.Clear();
                ActiveSequences = 0;
            }
        }
        foreach (Job job in active) job.Output.Writer.TryComplete(new ObjectDisposedException(nameof(BatchScheduler)));
    }

    /// <summary>
    /// Every running sequence takes its next token from its row of <paramref name="logits"/>. Sampling walks the whole
    /// vocabulary row (a softmax over 32k entries for temperature sampling), which does not batch, so rows are
    /// split across the cores. Each sequence has its own sampler and detokenizer, so the tokens do not depend on the split.
    /// </summary>
    private void AcceptAll(int n, float[] logits, GenerationUpdate[] updates)
    {
        int vocab = model.Config.VocabSize;
        void Rows(int start, int end)
        {
            for (int i = start; i < end; i++)
            {
                Job job = active[i];
                updates[i] = job.Sequence.Accept(logits.AsSpan(i * vocab, vocab), cache.Slot(i).Length < ContextLength, job.Cancellation);
            }
        }
        if (n == 1)
        {
            Rows(0, 1);
            return;
        }
        ExceptionDispatchInfo? failure = null;
        SpinWorkers.Shared.Run((part, parts) =>
        {
            int chunk = (n + parts - 1) / parts, start = Math.Min(n, part * chunk);
            try
            {
                Rows(start, Math.Min(n, start + chunk));
            }
            catch (Exception e)
            {
                // A worker thread must not throw; the step fails on the scheduler's thread instead.
                Interlocked.CompareExchange(ref failure, ExceptionDispatchInfo.Capture(e), null);
            }
        });
        failure?.Throw();
    }

    /// <summary>Prefills waiting requests into free slots; blocks for the first one while nothing runs.</summary>
    private void Admit()
    {
        while (active.Count < options.MaxBatchSize)
        {
            Job? job;
            if (active.Count == 0) queue.TryTake(out job, Timeout.Infinite, stopping.Token);
            else if (!queue.TryTake(out job)) return;
            if (job is null) return;
            job.Sequence.QueueWait = Stopwatch.GetElapsedTime(job.Submitted);
            queueWait.Record(job.Sequence.QueueWait.TotalSeconds);
            if (job.Cancellation.IsCancellationRequested)
            {
                job.Embeds.Dispose();
                Publish(job, job.Sequence.Finish(FinishReason.Cancelled));
                continue;
            }
            int slot = active.Count;
            KvCache slotCache = cache.Slot(slot);
            slotCache.Reset();
            (PromptKey? before, int written) = held[slot];
            held[slot] = default;
            // The first token's logits; a vocabulary's floats are a large-object allocation a request would otherwise make.
            float[] row = firstLogits ??= new float[model.Config.VocabSize];
            try
            {
                job.Sequence.Start();
                using var threads = TorchThreadScope.Use(options.PrefillThreads);
                // At least the last position is prefilled: its logits give the first token.
                int cached = job.Key is { } key ? prefixCache!.Restore(key, job.Sequence.PromptTokens - 1, slotCache, Shared(before, written, key)) : 0;
                job.Sequence.CachedPromptTokens = cached;
                using var scope = NewDisposeScope();
                Tensor rest = cached == 0 ? job.Embeds : job.Embeds.narrow(1, cached, job.Sequence.PromptTokens - cached);
                NativeTensor.CopyTo(model.Forward(rest, slotCache, lastOnly: true), row);
            }
            catch (Exception e)
            {
                slotCache.Reset();
                job.Output.Writer.TryComplete(e);
                continue;
            }
            finally
            {
                job.Embeds.Dispose();
            }
            GenerationUpdate first = job.Sequence.Accept(row, slotCache.Length < ContextLength, job.Cancellation);
            timeToFirstToken.Record(job.Sequence.TimeToFirstToken.TotalSeconds);
            Publish(job, first);
            // Cached after the first token is out, so that copying the prompt's state never delays it; requests admitted
            // from here on (the same clip asked again while this answer runs) find it.
            if (job.Key is { } prompt) CacheState(prompt, slotCache);
            if (!job.Sequence.IsFinished) active.Add(job);
            else
            {
                held[slot] = (job.Key, slotCache.Length);
                slotCache.Reset();
            }
            ActiveSequences = active.Count;
        }
    }

    private void DropCancelled()
    {
        for (int i = 0; i < active.Count; i++)
        {
            if (active[i].Cancellation.IsCancellationRequested && !active[i].Sequence.IsFinished)
                Publish(active[i], active[i].Sequence.Finish(FinishReason.Cancelled));
        }
        Compact();
    }

    /// <summary>Removes finished sequences, moving the last running one into each freed slot so slots stay packed.</summary>
    private void Compact()
    {
        for (int i = active.Count - 1; i >= 0; i--)
        {
            if (!active[i].Sequence.IsFinished) continue;
            // The answer's positions too: a follow-up resends it as the earlier turn.
            PromptKey? answered = active[i].Key?.Then(active[i].Sequence.Generated);
            if (answered is not null) CacheState(answered, cache.Slot(i));
            int last = active.Count - 1;
            if (i != last)
            {
                cache.Move(last, i);
                active[i] = active[last];
                // The moved sequence's state so far stays in the slot it left.
                held[last] = (active[i].Key?.Then(active[i].Sequence.Generated), cache.Slot(i).Length);
            }
            else
            {
                held[i] = (answered, cache.Slot(i).Length);
                cache.Slot(i).Reset();
            }
            active.RemoveAt(last);
        }
        ActiveSequences = active.Count;
    }

    /// <summary>The leading positions of <paramref name="key"/> that a slot holding <paramref name="length"/> positions of <paramref name="before"/> already has.</summary>
    private static int Shared(PromptKey? before, int length, PromptKey key)
    {
        if (before is null || before.Scope != key.Scope) return 0;
        return PromptKey.Shared(before.Positions, key.Positions, 0, Math.Min(length, Math.Min(before.Positions.Count, key.Positions.Count)));
    }

    /// <summary>
    /// Caches the state of <paramref name="slot"/> under <paramref name="key"/>. The cache only saves work: failing to
    /// keep a prefix (no memory for a copy) must not fail the sequences of the running batch.
    /// </summary>
    private void CacheState(PromptKey key, KvCache slot)
    {
        try
        {
            // As the prefill's libtorch work does: an OpenMP team of every core would fight the decode loop's workers.
            using var threads = TorchThreadScope.Use(options.PrefillThreads);
            prefixCache!.Insert(key, slot);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            cacheFailures.Add(1);
        }
    }

    private void Publish(Job job, GenerationUpdate update)
    {
        if (update.TokenId is not null) generatedTokens.Add(1);
        job.Output.Writer.TryWrite(update);
        if (update.Result is { } result)
        {
            Trace(job, result);
            RecordGenAi(result);
            finished.Add(1, new KeyValuePair<string, object?>("finish_reason", result.FinishReason.ToString().ToLowerInvariant()));
            job.Output.Writer.TryComplete();
        }
    }

    private static readonly KeyValuePair<string, object?>[] GenAiTags = [new("gen_ai.operation.name", "chat"), new("gen_ai.system", "llark")];

    private void RecordGenAi(GenerationResult result)
    {
        genAiRequestDuration.Record((result.QueueWait + result.TimeToFirstToken + result.DecodeTime).TotalSeconds, GenAiTags);
        if (result.TokenIds.Count > 1) genAiTimePerOutputToken.Record(result.DecodeTime.TotalSeconds / (result.TokenIds.Count - 1), GenAiTags);
    }

    /// <summary>
    /// The request's spans, laid back from its end by the times its result reports: waiting for a slot, the prefill
    /// (to the first token), the decode. A request cancelled while it waited has only the first.
    /// </summary>
    private static void Trace(Job job, GenerationResult result)
    {
        if (!Traces.HasListeners() || job.Parent == default) return;
        DateTime end = DateTime.UtcNow;
        DateTime firstToken = end - result.DecodeTime, admitted = firstToken - result.TimeToFirstToken;
        using (Span("queue wait", job.Parent, admitted - result.QueueWait, admitted)) { }
        if (result.TokenIds.Count == 0) return;
        using (Activity? prefill = Span("prefill", job.Parent, admitted, firstToken))
        {
            prefill?.SetTag("llark.prompt_tokens", result.PromptTokens).SetTag("llark.cached_prompt_tokens", result.CachedPromptTokens);
        }
        using Activity? decode = Span("decode", job.Parent, firstToken, end);
        decode?.SetTag("llark.generated_tokens", result.TokenIds.Count).SetTag("llark.finish_reason", result.FinishReason.ToString().ToLowerInvariant());
    }

    private static Activity? Span(string name, ActivityContext parent, DateTime start, DateTime end)
    {
        Activity? span = Traces.StartActivity(name, ActivityKind.Internal, parent, startTime: start);
        span?.SetEndTime(end);
        return span;
    }

    public void Dispose()
    {
        if (stopping.IsCancellationRequested) return;
        stopping.Cancel();
        worker.Join();
        queue.CompleteAdding();
        while (queue.TryTake(out Job? job))
        {
            job.Embeds.Dispose();
            job.Output.Writer.TryComplete(new ObjectDisposedException(nameof(BatchScheduler)));
        }
        cache.Dispose();
        queue.Dispose();
        meter.Dispose();
        stopping.Dispose();
    }

    private sealed class Job(Tensor embeds, GenerationSequence sequence, PromptKey? key, CancellationToken cancellation)
    {
        public Tensor Embeds { get; } = embeds;
        public PromptKey? Key { get; } = key;
        public GenerationSequence Sequence { get; } = sequence;
        public CancellationToken Cancellation { get; } = cancellation;
        public long Submitted { get; } = Stopwatch.GetTimestamp();

        /// <summary>The span of the call that submitted the request (captured here: the worker thread has none).</summary>
        public ActivityContext Parent { get; } = Activity.Current?.Context ?? default;

        // Unbounded but finite: a sequence writes at most max_new_tokens + 1 updates.
        public Channel<GenerationUpdate> Output { get; } = Channel.CreateUnbounded<GenerationUpdate>(
            new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    }
}
