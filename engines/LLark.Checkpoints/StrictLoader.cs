using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>
/// Loads a checkpoint into a model's tensors the way <c>load_state_dict(strict=True)</c> does: every parameter
/// must be found, every checkpoint tensor used, every shape equal. All mismatches are found before any weight is
/// written and reported in one error, so one run tells the whole story of a wrong checkpoint.
/// </summary>
public static class StrictLoader
{
    /// <param name="parameters">The model's tensors by checkpoint name; each must be contiguous and on the CPU.</param>
    /// <param name="source">The checkpoint; it stays open and owned by the caller.</param>
    /// <param name="ignoreExtra">
    /// Names of checkpoint tensors that may go unused, such as the <c>rotary_emb.inv_freq</c> buffers older Hugging
    /// Face Llama files carry.
    /// </param>
    /// <param name="progress">Told after each tensor; called on the loading thread.</param>
    /// <param name="ct">Checked between tensors; a cancelled load leaves the model partly overwritten.</param>
    public static void Load(
        IReadOnlyDictionary<string, torch.Tensor> parameters,
        ITensorSource source,
        Func<string, bool>? ignoreExtra = null,
        IProgress<LoadProgress>? progress = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(source);
        Check(parameters, source, ignoreExtra);

        // Checkpoint order, so each file is read front to back.
        var plan = source.Entries.Values.Where(e => parameters.ContainsKey(e.Name)).ToList();
        long bytesTotal = plan.Sum(e => e.ByteCount());
        long bytesDone = 0;
        using var noGrad = torch.no_grad();
        for (int i = 0; i < plan.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var entry = plan[i];
            source.ReadInto(entry.Name, parameters[entry.Name]);
            bytesDone += entry.ByteCount();
            progress?.Report(new LoadProgress(i + 1, plan.Count, bytesDone, bytesTotal, entry.Name));
        }
    }

    private static void Check(IReadOnlyDictionary<string, torch.Tensor> parameters, ITensorSource source, Func<string, bool>? ignoreExtra)
    {
        var entries = source.Entries;
        var missing = parameters.Keys.Where(n => !entries.ContainsKey(n)).Order(StringComparer.Ordinal).ToList();
        var unexpected = entries.Keys
            .Where(n => !parameters.ContainsKey(n) && !(ignoreExtra?.Invoke(n) ?? false))
            .Order(StringComparer.Ordinal).ToList();
        var misShaped = parameters
            .Where(p => entries.TryGetValue(p.Key, out var e) && !p.Value.shape.SequenceEqual(e.Shape))
            .OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => $"{p.Key} (model {TensorCopy.FormatShape(p.Value.shape)}, checkpoint {TensorCopy.FormatShape(entries[p.Key].Shape)})")
            .ToList();
        if (missing.Count == 0 && unexpected.Count == 0 && misShaped.Count == 0)
            return;

        var problems = new List<string>();
        if (missing.Count > 0)
            problems.Add($"{missing.Count} missing from the checkpoint: {Names.Summarize(missing)}");
        if (unexpected.Count > 0)
            problems.Add($"{unexpected.Count} unexpected in the checkpoint: {Names.Summarize(unexpected)}");
        if (misShaped.Count > 0)
            problems.Add($"{misShaped.Count} with mismatched shapes: {Names.Summarize(misShaped)}");
        throw new CheckpointException($"Checkpoint {Describe(entries)} does not fit the model. {string.Join(". ", problems)}.");
    }

    private static string Describe(IReadOnlyDictionary<string, TensorEntry> entries)
    {
        var files = entries.Values.Select(e => e.File).Distinct().ToList();
        return files.Count switch
        {
            0 => "(empty)",
            1 => files[0],
            _ => $"{Path.GetDirectoryName(files[0])} ({files.Count} files)",
        };
    }
}
