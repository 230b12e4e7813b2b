using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Data;
using LLark.Encoder.Engine;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Engine.Model;
using LLark.Encoder.V1;

namespace LLark.Cli.Commands;

/// <summary>
/// <c>llark data embed --manifest M --out DIR (--encoder DIR | --gateway URL)</c>: every clip of a manifest through the
/// encoder, into an embedding set (<see cref="EmbeddingSet"/>). Resumable: clips already in the set are skipped, and each
/// finished clip is on disk (its .npy written atomically, then its index line flushed) before the next one counts.
/// A clip that fails to decode is reported, written to <c>failures.jsonl</c> and skipped.
/// </summary>
internal static class DataEmbedCommand
{
    public static Command Create()
    {
        var manifest = new Option<string>("--manifest") { Description = "manifest.jsonl of the clips", Required = true };
        var output = new Option<string>("--out") { Description = "the embedding set's folder (created; resumed when it exists)", Required = true };
        var encoder = EmbedCommand.EncoderOption();
        var modelName = new Option<string?>("--model-name")
        {
            Description = "with --encoder: the encoder's name in ids (default: jukebox-5b for the 5b shape, else jukebox-<hash>, as the service names it)",
        };
        var layers = EmbedCommand.LayersOption();
        var fps = new Option<double>("--fps") { Description = "with --encoder: frames per second after pooling", DefaultValueFactory = _ => 25 };
        var path = EmbedCommand.PathOption();
        var dtype = EmbedCommand.DTypeOption();
        var batch = new Option<int>("--batch") { Description = "with --encoder: clips per forward pass (padded path)", DefaultValueFactory = _ => 4 };
        var gateway = new Option<string?>("--gateway") { Description = "embed through the encoder service behind this gateway URL instead (key: --api-key or $LLARK_API_KEY)" };
        var apiKey = new Option<string?>("--api-key") { Description = "API key for --gateway (default: $LLARK_API_KEY)" };
        var parallel = new Option<int>("--parallel") { Description = "with --gateway: requests in flight at once", DefaultValueFactory = _ => 4 };
        var limit = new Option<int?>("--limit") { Description = "embed at most this many clips of the manifest (its first ones)" };
        var command = new Command("embed", "Embed every clip of a manifest, here (--encoder) or through the encoder service (--gateway)")
        {
            manifest, output, encoder, modelName, layers, fps, path, dtype, batch, gateway, apiKey, parallel, limit,
        };
        command.SetAction((parse, ct) => CliErrors.Run(async () =>
        {
            string? folder = parse.GetValue(encoder), url = parse.GetValue(gateway);
            if ((folder is null) == (url is null))
                throw new UsageException("give exactly one of --encoder DIR (embed here) or --gateway URL (embed on the service)");
            var set = new DatasetEmbedding(parse.GetValue(manifest)!, parse.GetValue(output)!, parse.GetValue(limit));
            if (folder is not null)
            {
                if (parse.GetValue(batch) < 1) throw new UsageException("--batch must be at least 1");
                double f = parse.GetValue(fps);
                if (!(f > 0)) throw new UsageException("--fps must be positive");
                using var local = new LocalClipEmbedder(folder, parse.GetValue(modelName), parse.GetValue(layers), f,
                    EmbedCommand.ParsePath(parse.GetValue(path)!), parse.GetValue(dtype)!, parse.GetValue(batch));
                return await set.RunAsync(local, ct).ConfigureAwait(false);
            }
            if (parse.GetValue(parallel) < 1) throw new UsageException("--parallel must be at least 1");
            using var remote = new RemoteClipEmbedder(url!, parse.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("LLARK_API_KEY"),
                parse.GetValue(parallel));
            return await set.RunAsync(remote, ct).ConfigureAwait(false);
        }));
        return command;
    }
}

/// <summary>A clip's embedding, however it was made.</summary>
internal sealed record ClipEmbedding(float[] Values, int Frames, int Width, double Fps, string EncoderModelId, int Layer, string? EmbeddingId);

/// <summary>Turns clips into embeddings; <see cref="EmbedAsync"/> gets several clips and returns, per clip, an embedding or an error.</summary>
internal interface IClipEmbedder : IDisposable
{
    /// <summary>How many clips one call should get (a forward pass, or requests in flight).</summary>
    int BatchSize { get; }

    /// <summary>A short description for the first progress line.</summary>
    string Describe { get; }

    Task<IReadOnlyList<Result>> EmbedAsync(IReadOnlyList<string> audioPaths, CancellationToken ct);

    /// <summary>One clip's outcome: an embedding, or why there is none (<see cref="Fatal"/> stops the run: the encoder itself failed).</summary>
    internal sealed record Result(ClipEmbedding? Embedding, string? Error, bool Fatal = false);
}

/// <summary>The resumable loop: which clips are left, writing each result, the progress line, the failures file.</summary>
internal sealed class DatasetEmbedding(string manifestPath, string outDir, int? limit)
{
    public const string FailuresFile = "failures.jsonl";

    public async Task<int> RunAsync(IClipEmbedder embedder, CancellationToken ct)
    {
        Manifest manifest = Manifest.Load(manifestPath);
        foreach (JsonLineError e in manifest.Errors) Console.Error.WriteLine($"skipped: {e}");
        Directory.CreateDirectory(Path.Combine(outDir, "frames"));
        EmbeddingSet existing = EmbeddingSet.Load(outDir);
        foreach (JsonLineError e in existing.Errors) Console.Error.WriteLine($"ignored a corrupt index line (that clip is embedded again): {e}");
        EmbeddingEntry? reference = existing.Entries.FirstOrDefault();

        var todo = new List<ClipRecord>();
        int done = 0;
        foreach (ClipRecord clip in limit is { } n ? manifest.Clips.Take(n) : manifest.Clips)
        {
            if (existing.TryGet(clip.ClipId, out EmbeddingEntry entry) && File.Exists(Path.Combine(outDir, entry.File))) done++;
            else todo.Add(clip);
        }
        Console.Error.WriteLine($"{embedder.Describe}: {todo.Count} clips to embed, {done} already in {outDir}");

        using var index = new JsonLinesAppender(Path.Combine(outDir, EmbeddingSet.IndexFile));
        // The failures file reports this run: clips that failed before are tried again and listed again if they still fail.
        File.Delete(Path.Combine(outDir, FailuresFile));
        using var failures = new JsonLinesAppender(Path.Combine(outDir, FailuresFile));
        var progress = new ProgressLine("embed", todo.Count);
        int failed = 0, embedded = 0;
        for (int at = 0; at < todo.Count; at += embedder.BatchSize)
        {
            ct.ThrowIfCancellationRequested();
            List<ClipRecord> batch = todo.GetRange(at, Math.Min(embedder.BatchSize, todo.Count - at));
            IReadOnlyList<IClipEmbedder.Result> results = await embedder.EmbedAsync(batch.ConvertAll(manifest.AudioPath), ct).ConfigureAwait(false);
            for (int i = 0; i < batch.Count; i++)
            {
                ClipRecord clip = batch[i];
                IClipEmbedder.Result r = results[i];
                if (r.Embedding is not { } e)
                {
                    if (r.Fatal) throw new InvalidOperationException($"{clip.ClipId}: {r.Error}");
                    failed++;
                    progress.Note($"skipped {clip.ClipId} ({clip.Audio}): {r.Error}");
                    failures.Append(new FailedClip(clip.ClipId, clip.Audio, r.Error ?? "unknown error"));
                    continue;
                }
                if (reference is not null && (reference.Encoder != e.EncoderModelId || reference.Width != e.Width || reference.Fps != e.Fps))
                    throw new UsageException($"{outDir} holds embeddings from '{reference.Encoder}' (width {reference.Width}, {reference.Fps} fps); " +
                        $"this encoder is '{e.EncoderModelId}' (width {e.Width}, {e.Fps} fps): use another --out");
                string file = "frames/" + SafeFileName(clip.ClipId) + ".npy";
                Npy.WriteFloat32(Path.Combine(outDir, file), e.Values, e.Frames, e.Width);
                var written = new EmbeddingEntry
                {
                    ClipId = clip.ClipId, File = file, Frames = e.Frames, Width = e.Width, Fps = e.Fps,
                    Encoder = e.EncoderModelId, Layer = e.Layer, EmbeddingId = e.EmbeddingId,
                };
                index.Append(written);
                reference ??= written;
                embedded++;
            }
            progress.Advance(batch.Count);
        }
        progress.Finish();
        Console.Error.WriteLine($"embedded {embedded}, skipped {failed} (listed in {Path.Combine(outDir, FailuresFile)}), {done} were already done");
        return failed > 0 && embedded == 0 && done == 0 && todo.Count > 0 ? ExitCodes.BadInput : ExitCodes.Ok;
    }

    /// <summary>Clip ids may hold '/' (paths): the file name keeps them readable and unique.</summary>
    internal static string SafeFileName(string id)
    {
        var chars = id.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray();
        string name = new(chars);
        // Different ids that map to one name get a short hash to stay apart.
        return name == id ? name : name + "-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(id)))[..8];
    }

    private sealed record FailedClip(
        [property: System.Text.Json.Serialization.JsonPropertyName("clip_id")] string ClipId,
        [property: System.Text.Json.Serialization.JsonPropertyName("audio")] string Audio,
        [property: System.Text.Json.Serialization.JsonPropertyName("error")] string Error);
}

/// <summary>The encoder in this process; the embedding ids and encoder ids are the ones the encoder service would give.</summary>
internal sealed class LocalClipEmbedder : IClipEmbedder
{
    private readonly ClipEmbedder embedder;

    public LocalClipEmbedder(string folder, string? modelName, int? layers, double fps, ExtractionPath path, string dtype, int batchSize)
    {
        embedder = new ClipEmbedder(AudioEncoderLoader.Load(folder, new AudioEncoderOptions
        {
            Fps = fps, Layers = EmbedCommand.CheckLayers(layers), MatrixType = EmbedCommand.ParseDType(dtype), Path = path, ModelName = modelName, BatchSize = batchSize,
        }));
    }

    public int BatchSize => embedder.Encoder.PreferredBatchSize;

    public string Describe => $"encoder {embedder.Encoder.ModelId} here";

    public Task<IReadOnlyList<IClipEmbedder.Result>> EmbedAsync(IReadOnlyList<string> audioPaths, CancellationToken ct)
    {
        var results = new IClipEmbedder.Result?[audioPaths.Count];
        var ready = new List<(int Index, PreparedClip Clip)>();
        for (int i = 0; i < audioPaths.Count; i++)
        {
            try
            {
                ready.Add((i, embedder.Prepare(EmbedCommand.ReadClip(audioPaths[i]))));
            }
            catch (Exception e) when (e is AudioDecodeException or UnusableClipException or IOException or UnauthorizedAccessException)
            {
                results[i] = new IClipEmbedder.Result(null, e.Message);
            }
        }
        if (ready.Count > 0)
        {
            IReadOnlyList<ClipFrames> embedded = embedder.Embed(ready.ConvertAll(r => r.Clip), ct);
            for (int j = 0; j < ready.Count; j++)
            {
                ClipFrames e = embedded[j];
                results[ready[j].Index] = new IClipEmbedder.Result(new ClipEmbedding(e.Values, e.Frames, e.Width, e.Fps, e.EncoderId, e.Layer, e.EmbeddingId), null);
            }
        }
        return Task.FromResult<IReadOnlyList<IClipEmbedder.Result>>(results.Select(r => r!).ToArray());
    }

    public void Dispose() => embedder.Encoder.Dispose();
}

/// <summary>The encoder service behind a gateway: several requests in flight, so a fleet shares the work and the cache.</summary>
internal sealed class RemoteClipEmbedder : IClipEmbedder
{
    private readonly Grpc.Net.Client.GrpcChannel channel;
    private readonly EncoderService.EncoderServiceClient client;
    private readonly string address;

    public RemoteClipEmbedder(string url, string? apiKey, int parallel)
    {
        address = url;
        channel = ClientOptions.ChannelFor(url, apiKey);
        client = new EncoderService.EncoderServiceClient(channel);
        BatchSize = parallel;
    }

    public int BatchSize { get; }

    public string Describe => $"encoder service at {address}";

    public async Task<IReadOnlyList<IClipEmbedder.Result>> EmbedAsync(IReadOnlyList<string> audioPaths, CancellationToken ct) =>
        await Task.WhenAll(audioPaths.Select(p => EmbedOneAsync(p, ct))).ConfigureAwait(false);

    private async Task<IClipEmbedder.Result> EmbedOneAsync(string path, CancellationToken ct)
    {
        byte[] bytes;
        try
        {
            bytes = await File.ReadAllBytesAsync(path, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new IClipEmbedder.Result(null, e.Message);
        }
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                EmbedResponse r = await client.EmbedAsync(new EmbedRequest
                {
                    Audio = new AudioBytes { Data = ByteString.CopyFrom(bytes), Filename = Path.GetFileName(path) },
                    ReturnFrames = true,
                }, cancellationToken: ct).ConfigureAwait(false);
                float[] values = EmbeddingFramesCodec.Decode(r.Embedding);
                int layer = LayerOf(r.EncoderModelId);
                return new IClipEmbedder.Result(new ClipEmbedding(values, (int)r.Frames, (int)r.Width, r.Fps, r.EncoderModelId, layer, r.EmbeddingId), null);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.InvalidArgument or StatusCode.OutOfRange)
            {
                return new IClipEmbedder.Result(null, e.Status.Detail);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.ResourceExhausted or StatusCode.Unavailable && attempt < 6)
            {
                // Busy or restarting: back off and try again; the service's cache keeps whatever it finished.
                await Task.Delay(TimeSpan.FromMilliseconds(250 << attempt), ct).ConfigureAwait(false);
            }
            catch (RpcException e)
            {
                return new IClipEmbedder.Result(null, $"{e.StatusCode}: {e.Status.Detail}", Fatal: true);
            }
        }
    }

    /// <summary>The block count from an encoder id such as "jukebox-5b/blocks36/fps25/fp32".</summary>
    internal static int LayerOf(string modelId)
    {
        foreach (string part in modelId.Split('/'))
        {
            if (part.StartsWith("blocks", StringComparison.Ordinal) && int.TryParse(part.AsSpan(6), NumberStyles.None, CultureInfo.InvariantCulture, out int n))
                return n;
        }
        return 0;
    }

    public void Dispose() => channel.Dispose();
}

/// <summary>A progress bar with rate and ETA on stderr: redrawn in place on a terminal, a line per 10% otherwise.</summary>
internal sealed class ProgressLine(string label, int total)
{
    private readonly Stopwatch clock = Stopwatch.StartNew();
    private readonly bool terminal = !Console.IsErrorRedirected;
    private int done;
    private int lastDecile;

    public void Advance(int count)
    {
        done += count;
        if (total == 0) return;
        double seconds = clock.Elapsed.TotalSeconds;
        double rate = done / Math.Max(seconds, 1e-9);
        double eta = (total - done) / Math.Max(rate, 1e-9);
        int width = 30, filled = (int)((long)width * done / total);
        string line = string.Create(CultureInfo.InvariantCulture,
            $"{label} [{new string('#', filled)}{new string('.', width - filled)}] {done}/{total} {rate:0.00}/s, ETA {Format(eta)}");
        if (terminal) Console.Error.Write("\r" + line);
        else if (done * 10 / total > lastDecile || done == total)
        {
            lastDecile = done * 10 / total;
            Console.Error.WriteLine(line);
        }
    }

    /// <summary>A message that must not be overwritten by the bar.</summary>
    public void Note(string message)
    {
        if (terminal) Console.Error.Write("\r\x1b[K");
        Console.Error.WriteLine(message);
    }

    public void Finish()
    {
        if (terminal && total > 0) Console.Error.WriteLine();
    }

    private static string Format(double seconds) =>
        seconds >= 3600 ? TimeSpan.FromSeconds(seconds).ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture)
        : TimeSpan.FromSeconds(seconds).ToString(@"m\:ss", CultureInfo.InvariantCulture);
}
