using LLark.Common;
using LLark.Data;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Multimodal;
using LLark.Language.Engine.Tokenization;

namespace LLark.Training;

/// <summary>
/// One tokenized example: the LLark prompt with its audio span expanded, then the answer and the "###" that ends a
/// turn. <see cref="Labels"/> is -100 everywhere but the answer tokens (and the stop that follows them).
/// </summary>
public sealed record TrainingExample(string ClipId, int[] Ids, int[] Labels, EmbeddingEntry Embedding)
{
    /// <summary>The pair's task ("tempo", "key", ...), or null when the pairs file names none.</summary>
    public string? Task { get; init; }
}

/// <summary>A padded micro-batch: ids and labels [Size, Length] row-major, and every patch position's frame in order.</summary>
public sealed record TrainingBatch(long[] Ids, long[] Labels, int Size, int Length, float[] Frames, int FrameCount, int Tokens);

/// <summary>The token layout of LLark's training examples, shared by the data loader and its tests.</summary>
public static class ExampleLayout
{
    public const int IgnoreIndex = -100;

    /// <summary>
    /// What follows the answer: LLaVA v0 ends each turn with a newline and the next turn opens with "###", the
    /// string generation stops at. Training on it teaches the model to stop.
    /// </summary>
    public const string AnswerEnd = "\n" + LLarkPrompt.StopString;

    /// <summary>
    /// Tokenizes one single-turn example. The prompt is <see cref="LLarkPrompt.Render"/> of the query with its
    /// <c>&lt;audio&gt;</c> expanded to start + <paramref name="frames"/> patches + end, encoded with BOS exactly as
    /// <see cref="LLarkModel.BuildPrompt"/> encodes it at inference; the answer is encoded on its own (so the prompt's
    /// tokens never depend on it) and appended. Sequences over <paramref name="maxLength"/> lose the end of their
    /// answer; null (with why) when not even one answer token would fit.
    /// </summary>
    public static (int[] Ids, int[] Labels)? Build(LlamaTextTokenizer tokenizer, string query, string response, int frames, int maxLength,
        out string? skipped)
    {
        skipped = null;
        string prompt;
        try
        {
            prompt = LLarkPrompt.Render([new ChatTurn(query.Trim())], withAudio: true);
        }
        catch (InvalidRequestException e)
        {
            skipped = e.Message;
            return null;
        }
        string patches = string.Concat(Enumerable.Repeat("<audio_patch>", frames));
        prompt = prompt.Replace(LLarkPrompt.AudioPlaceholder, "<audio_start>" + patches + "<audio_end>", StringComparison.Ordinal);
        int[] promptIds = tokenizer.Encode(prompt, addBos: true);
        string answer = response.Trim();
        if (answer.Length == 0 || answer.Contains(LLarkPrompt.StopString, StringComparison.Ordinal))
        {
            skipped = answer.Length == 0 ? "empty response" : $"the response contains '{LLarkPrompt.StopString}', which ends a turn";
            return null;
        }
        int[] answerIds = tokenizer.Encode(answer + AnswerEnd, addBos: false);
        if (promptIds.Length + 1 > maxLength)
        {
            skipped = $"the prompt alone is {promptIds.Length} tokens ({frames} audio frames), over max_length {maxLength}";
            return null;
        }
        int keep = Math.Min(answerIds.Length, maxLength - promptIds.Length);
        var ids = new int[promptIds.Length + keep];
        var labels = new int[ids.Length];
        promptIds.CopyTo(ids, 0);
        Array.Copy(answerIds, 0, ids, promptIds.Length, keep);
        Array.Fill(labels, IgnoreIndex, 0, promptIds.Length);
        Array.Copy(answerIds, 0, labels, promptIds.Length, keep);
        return (ids, labels);
    }

    /// <summary>Right-pads examples with <paramref name="padId"/> (labels -100) and gathers their frames in patch order.</summary>
    public static TrainingBatch Collate(IReadOnlyList<TrainingExample> examples, Func<EmbeddingEntry, float[]> readFrames, int padId)
    {
        int length = examples.Max(e => e.Ids.Length);
        var ids = new long[examples.Count * length];
        var labels = new long[ids.Length];
        Array.Fill(ids, padId);
        Array.Fill(labels, IgnoreIndex);
        var frames = new List<float>();
        int frameCount = 0, tokens = 0;
        for (int b = 0; b < examples.Count; b++)
        {
            TrainingExample e = examples[b];
            for (int t = 0; t < e.Ids.Length; t++)
            {
                ids[b * length + t] = e.Ids[t];
                labels[b * length + t] = e.Labels[t];
            }
            tokens += e.Ids.Length;
            frames.AddRange(readFrames(e.Embedding));
            frameCount += e.Embedding.Frames;
        }
        return new TrainingBatch(ids, labels, examples.Count, length, [.. frames], frameCount, tokens);
    }
}

/// <summary>
/// The frame noise of <see cref="TrainingConfig.FrameNoise"/>: independent Gaussian draws, each dimension's scaled by
/// its standard deviation, from a generator seeded by (seed, micro-batch) alone, so micro-batch k always gets the
/// same noise.
/// </summary>
public static class FrameNoise
{
    /// <summary>
    /// A noisy copy of <paramref name="frames"/> (row-major, <paramref name="std"/>.Length wide): each value plus
    /// <paramref name="scale"/> x std[d] x N(0, 1). A dimension whose std is 0 stays as it is.
    /// </summary>
    public static float[] Apply(float[] frames, float[] std, double scale, int seed, long microBatch)
    {
        int width = std.Length;
        if (width == 0 || frames.Length % width != 0)
            throw new ArgumentException($"{frames.Length} values are not whole frames of width {width}", nameof(frames));
        ulong mixed = unchecked((ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)microBatch * 0xBF58476D1CE4E5B9UL + 0x94D049BB133111EBUL);
        var random = new Random((int)(mixed >> 33));
        var noisy = new float[frames.Length];
        for (int i = 0; i < frames.Length; i += 2)
        {
            // Box-Muller: two independent normals from two uniforms in (0, 1].
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            double radius = Math.Sqrt(-2.0 * Math.Log(u1));
            noisy[i] = frames[i] + (float)(scale * std[i % width] * radius * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < frames.Length) noisy[i + 1] = frames[i + 1] + (float)(scale * std[(i + 1) % width] * radius * Math.Sin(2 * Math.PI * u2));
        }
        return noisy;
    }
}

/// <summary>
/// The examples of a run: pairs joined to their clips' embeddings, checked to come from one encoder, layer, width and
/// frame rate, split into training and validation by clip so that no clip is in both.
/// </summary>
public sealed class TrainingData
{
    private TrainingData(EmbeddingSet set, List<TrainingExample> train, List<TrainingExample> validation, Dictionary<string, int> skipped,
        EmbeddingEntry format)
    {
        Embeddings = set;
        Train = train;
        Validation = validation;
        Skipped = skipped;
        AudioWidth = format.Width;
        AudioFps = format.Fps;
        AudioEncoder = format.Encoder;
        AudioLayer = format.Layer;
    }

    public EmbeddingSet Embeddings { get; }
    public IReadOnlyList<TrainingExample> Train { get; }
    public IReadOnlyList<TrainingExample> Validation { get; }

    /// <summary>Pairs left out, counted by reason.</summary>
    public IReadOnlyDictionary<string, int> Skipped { get; }

    public int AudioWidth { get; }
    public double AudioFps { get; }
    public string AudioEncoder { get; }
    public int AudioLayer { get; }

    public float[] ReadFrames(EmbeddingEntry entry) => Embeddings.ReadFrames(entry);

    private (float[] Mean, float[] Std)? frameStatistics;

    /// <summary>
    /// Per-dimension mean and (population) standard deviation over every frame of the training clips, each clip once.
    /// Read once and kept: the projector's standardised init and the frame noise both ask for them. Callers must not
    /// change the arrays.
    /// </summary>
    public (float[] Mean, float[] Std) FrameStatistics() => frameStatistics ??= ComputeFrameStatistics();

    private (float[] Mean, float[] Std) ComputeFrameStatistics()
    {
        var sum = new double[AudioWidth];
        var squares = new double[AudioWidth];
        long count = 0;
        foreach (EmbeddingEntry entry in Train.Select(e => e.Embedding).DistinctBy(e => e.ClipId))
        {
            float[] frames = ReadFrames(entry);
            for (int i = 0; i < frames.Length; i++)
            {
                double v = frames[i];
                sum[i % AudioWidth] += v;
                squares[i % AudioWidth] += v * v;
            }
            count += frames.Length / AudioWidth;
        }
        if (count == 0) throw new InvalidOperationException("no training frames");
        var mean = new float[AudioWidth];
        var std = new float[AudioWidth];
        for (int d = 0; d < AudioWidth; d++)
        {
            double m = sum[d] / count;
            mean[d] = (float)m;
            std[d] = (float)Math.Sqrt(Math.Max(0, squares[d] / count - m * m));
        }
        return (mean, std);
    }

    public static TrainingData Load(TrainingConfig config, LlamaTextTokenizer tokenizer)
    {
        string setDir = config.Resolve(config.Data.Embeddings);
        if (!Directory.Exists(setDir)) throw new TrainingConfigException("data.embeddings", $"embedding set folder not found: {setDir}");
        EmbeddingSet set = EmbeddingSet.Load(setDir);
        if (set.Entries.Count == 0)
            throw new TrainingConfigException("data.embeddings", $"{setDir} holds no readable {EmbeddingSet.IndexFile} entries");
        EmbeddingEntry format = CheckOneFormat(set, config.Audio);

        var skipped = new Dictionary<string, int>(StringComparer.Ordinal);
        void Skip(string why) => skipped[why] = skipped.GetValueOrDefault(why) + 1;
        foreach (JsonLineError error in set.Errors) Skip($"unreadable line in {EmbeddingSet.IndexFile}");

        List<TrainingExample> Read(string field, string path)
        {
            string full = config.Resolve(path);
            if (!File.Exists(full)) throw new TrainingConfigException(field, $"pairs file not found: {full}");
            var errors = new List<JsonLineError>();
            List<InstructionPair> pairs = JsonLines.Read<InstructionPair>(full, errors,
                p => string.IsNullOrEmpty(p.ClipId) ? "no clip_id" : null);
            foreach (JsonLineError _ in errors) Skip($"unreadable line in {Path.GetFileName(full)}");
            var examples = new List<TrainingExample>(pairs.Count);
            foreach (InstructionPair pair in pairs)
            {
                if (!set.TryGet(pair.ClipId, out EmbeddingEntry entry))
                {
                    Skip("clip not in the embedding set");
                    continue;
                }
                if (entry.Frames < 1)
                {
                    Skip("embedding with no frames");
                    continue;
                }
                (int[] Ids, int[] Labels)? built = ExampleLayout.Build(tokenizer, pair.Query, pair.Response, entry.Frames, config.MaxLength, out string? why);
                if (built is null)
                {
                    Skip(why!.StartsWith("the prompt alone", StringComparison.Ordinal) ? "prompt over max_length" : why);
                    continue;
                }
                examples.Add(new TrainingExample(pair.ClipId, built.Value.Ids, built.Value.Labels, entry) { Task = pair.Task });
            }
            return examples;
        }

        List<TrainingExample> all = Read("data.pairs", config.Data.Pairs);
        List<TrainingExample> train, validation;
        if (config.Data.ValidationPairs is { } validationPath)
        {
            train = all;
            validation = Read("data.validation_pairs", validationPath);
        }
        else
        {
            train = [.. all.Where(e => !HeldOut(e.ClipId, config.Data.ValidationFraction))];
            validation = [.. all.Where(e => HeldOut(e.ClipId, config.Data.ValidationFraction))];
        }
        train = Repeat(train, config.Data.TaskRepeats);
        if (train.Count == 0)
        {
            throw new TrainingConfigException("data.pairs", "no usable training examples" +
                (skipped.Count > 0 ? " (skipped: " + string.Join(", ", skipped.Select(s => $"{s.Value} {s.Key}")) + ")" : ""));
        }
        if (validation.Count > config.Data.MaxValidationExamples) validation = validation[..config.Data.MaxValidationExamples];
        return new TrainingData(set, train, validation, skipped, format);
    }

    /// <summary>
    /// Oversamples (or drops) training examples by task: an example whose task has a count in
    /// <paramref name="repeats"/> appears that many times, in place, and every other example once. Validation is
    /// never repeated, so its loss stays comparable between runs. A task that no training example has is an error:
    /// a misspelt name must not silently train the unweighted mix.
    /// </summary>
    internal static List<TrainingExample> Repeat(List<TrainingExample> train, IReadOnlyDictionary<string, int>? repeats)
    {
        if (repeats is null || repeats.Count == 0) return train;
        var present = new HashSet<string>(train.Select(e => e.Task).OfType<string>(), StringComparer.Ordinal);
        foreach (string task in repeats.Keys)
        {
            if (!present.Contains(task))
            {
                string known = present.Count == 0 ? "the pairs name no tasks" : "tasks present: " + string.Join(", ", present.Order(StringComparer.Ordinal));
                throw new TrainingConfigException("data.task_repeats", $"no training example has task '{task}' ({known})");
            }
        }
        var result = new List<TrainingExample>(train.Count);
        foreach (TrainingExample e in train)
        {
            int n = e.Task is { } t && repeats.TryGetValue(t, out int count) ? count : 1;
            for (int i = 0; i < n; i++) result.Add(e);
        }
        return result;
    }

    /// <summary>A clip is held out when the FNV-1a hash of its id falls in the lowest <paramref name="fraction"/> of the range.</summary>
    internal static bool HeldOut(string clipId, double fraction)
    {
        if (fraction <= 0) return false;
        uint hash = 2166136261;
        foreach (byte b in System.Text.Encoding.UTF8.GetBytes(clipId)) hash = (hash ^ b) * 16777619;
        return hash % 1_000_000 < fraction * 1_000_000;
    }

    private static EmbeddingEntry CheckOneFormat(EmbeddingSet set, AudioExpectation expected)
    {
        EmbeddingEntry first = set.Entries.First();
        foreach (EmbeddingEntry e in set.Entries)
        {
            if (e.Width != first.Width)
                throw new TrainingConfigException("data.embeddings", $"mixed widths: clip {first.ClipId} is {first.Width} wide, clip {e.ClipId} {e.Width}");
            if (Math.Abs(e.Fps - first.Fps) > 1e-9)
                throw new TrainingConfigException("data.embeddings", $"mixed frame rates: clip {first.ClipId} at {first.Fps} fps, clip {e.ClipId} at {e.Fps}");
            if (e.Encoder != first.Encoder)
                throw new TrainingConfigException("data.embeddings", $"mixed encoders: clip {first.ClipId} from '{first.Encoder}', clip {e.ClipId} from '{e.Encoder}'");
            if (e.Layer != first.Layer)
                throw new TrainingConfigException("data.embeddings", $"mixed layers: clip {first.ClipId} after layer {first.Layer}, clip {e.ClipId} after {e.Layer}");
        }
        if (first.Width < 1) throw new TrainingConfigException("data.embeddings", $"clip {first.ClipId} has width {first.Width}");
        if (expected.Fps is { } fps && Math.Abs(fps - first.Fps) > 1e-9)
            throw new TrainingConfigException("audio.fps", $"the config expects {fps} fps but the embedding set is at {first.Fps}");
        if (expected.Encoder is { } encoder && encoder != first.Encoder)
            throw new TrainingConfigException("audio.encoder", $"the config expects encoder '{encoder}' but the embedding set is from '{first.Encoder}'");
        if (expected.Layer is { } layer && layer != first.Layer)
            throw new TrainingConfigException("audio.layer", $"the config expects layer {layer} but the embedding set is from layer {first.Layer}");
        return first;
    }
}
