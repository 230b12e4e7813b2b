using System.Text.Json;
using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>
/// A Hugging Face sharded checkpoint: <c>model.safetensors.index.json</c> or <c>pytorch_model.bin.index.json</c>,
/// whose <c>weight_map</c> assigns each tensor to a shard file next to it. The index and the shards are checked
/// against each other on open, so a missing or mismatched shard fails before any weight is read.
/// </summary>
public sealed class ShardedTensorSource : ITensorSource
{
    private readonly Dictionary<string, ITensorSource> shards = [];
    private readonly Dictionary<string, ITensorSource> owners = [];
    private readonly Dictionary<string, TensorEntry> entries = [];

    public ShardedTensorSource(string indexPath)
    {
        IndexPath = indexPath;
        var weightMap = ReadWeightMap(indexPath);
        // An index named as a shard would be opened as an index again: one naming itself recursed until the stack overflowed.
        if (weightMap.Values.FirstOrDefault(f => f.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) is string nested)
            throw new CheckpointException($"{indexPath} names '{nested}' as a shard, but it is an index (.json); shards must be safetensors or torch.save files.");
        string directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        var missing = weightMap.Values.Distinct().Where(f => !File.Exists(System.IO.Path.Combine(directory, f))).ToList();
        if (missing.Count > 0)
            throw new CheckpointException($"{indexPath} names shard files that do not exist: {string.Join(", ", missing)}.");
        try
        {
            foreach (var group in weightMap.GroupBy(p => p.Value, p => p.Key).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                var shard = CheckpointOpener.OpenFile(System.IO.Path.Combine(directory, group.Key));
                shards[group.Key] = shard;
                CheckShard(indexPath, group.Key, shard, group.ToHashSet());
                foreach (string name in group)
                    owners[name] = shard;
            }
            // Shard order, then file order within each shard, so that loading walks each file forwards once.
            foreach (var shard in shards.Values)
                foreach (var entry in shard.Entries.Values)
                    entries[entry.Name] = entry;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string IndexPath { get; }

    public IReadOnlyDictionary<string, TensorEntry> Entries => entries;

    public void ReadInto(string name, torch.Tensor destination)
    {
        if (!owners.TryGetValue(name, out var shard))
            throw new CheckpointException($"{IndexPath} maps no shard to tensor '{name}'.");
        shard.ReadInto(name, destination);
    }

    public void Dispose()
    {
        foreach (var shard in shards.Values)
            shard.Dispose();
        shards.Clear();
    }

    private static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        JsonDocument document;
        try
        {
            var bytes = File.ReadAllBytes(indexPath);
            // Invalid UTF-8 inside a string passes the parser and fails later, when the name is read.
            if (!System.Text.Unicode.Utf8.IsValid(bytes))
                throw new CheckpointException($"{indexPath} is not valid UTF-8.");
            document = JsonDocument.Parse(bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"Cannot read checkpoint index {indexPath}: {e.Message}", e);
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{indexPath} is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{indexPath} has no weight_map object.");
            var weightMap = new Dictionary<string, string>();
            foreach (var item in map.EnumerateObject())
            {
                string? file = item.Value.ValueKind == JsonValueKind.String ? item.Value.GetString() : null;
                // Shards live beside the index; a path elsewhere is a malformed (or hostile) index.
                if (string.IsNullOrEmpty(file) || System.IO.Path.GetFileName(file) != file || file is "." or "..")
                    throw new CheckpointException($"{indexPath} maps tensor '{item.Name}' to '{item.Value}', which is not a file name beside the index.");
                weightMap[item.Name] = file;
            }
            return weightMap;
        }
    }

    private static void CheckShard(string indexPath, string file, ITensorSource shard, HashSet<string> assigned)
    {
        var absent = assigned.Where(n => !shard.Entries.ContainsKey(n)).Order(StringComparer.Ordinal).ToList();
        var unlisted = shard.Entries.Keys.Where(n => !assigned.Contains(n)).Order(StringComparer.Ordinal).ToList();
        if (absent.Count == 0 && unlisted.Count == 0)
            return;
        var problems = new List<string>();
        if (absent.Count > 0)
            problems.Add($"the index assigns it {absent.Count} tensors it lacks ({Names.Summarize(absent)})");
        if (unlisted.Count > 0)
            problems.Add($"it holds {unlisted.Count} tensors the index assigns elsewhere or not at all ({Names.Summarize(unlisted)})");
        throw new CheckpointException($"Shard {file} does not match {indexPath}: {string.Join("; ", problems)}.");
    }
}
