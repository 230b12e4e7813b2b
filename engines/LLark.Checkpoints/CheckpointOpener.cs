namespace LLark.Checkpoints;

/// <summary>Opens whatever a checkpoint path holds, telling the formats apart by content rather than by name.</summary>
public static class CheckpointOpener
{
    /// <summary>What a model directory is searched for, best first: safetensors are read without unpickling.</summary>
    public static IReadOnlyList<string> DirectoryCandidates { get; } =
        ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"];

    /// <summary>
    /// Opens a checkpoint file (safetensors, torch.save zip or legacy, or a shard index ending in <c>.json</c>) or a Hugging
    /// Face model directory. <paramref name="stateDictKey"/> and <paramref name="stripModulePrefix"/> apply to
    /// torch.save files only (see <see cref="TorchPickleFile"/>).
    /// </summary>
    public static ITensorSource Open(string path, string? stateDictKey = null, bool stripModulePrefix = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            foreach (string candidate in DirectoryCandidates)
            {
                string file = Path.Combine(path, candidate);
                if (File.Exists(file))
                    return OpenFile(file, stateDictKey, stripModulePrefix);
            }
            throw new CheckpointException($"Checkpoint directory {path} holds none of: {string.Join(", ", DirectoryCandidates)}.");
        }
        if (!File.Exists(path))
            throw new CheckpointException($"Checkpoint {path} does not exist.");
        return OpenFile(path, stateDictKey, stripModulePrefix);
    }

    internal static ITensorSource OpenFile(string path, string? stateDictKey = null, bool stripModulePrefix = false)
    {
        // A safetensors file may begin with '{' too (a header length of 123), so indexes are known by name.
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            return new ShardedTensorSource(path);
        Span<byte> head = stackalloc byte[4];
        int read;
        using (var handle = CheckpointFiles.OpenRead(path))
            read = RandomAccess.Read(handle, head, 0);
        head = head[..read];
        if (head.SequenceEqual(TorchPickleFile.ZipMagic) || TorchPickleFile.IsLegacyStart(head))
            return new TorchPickleFile(path, stateDictKey, stripModulePrefix);
        return new SafetensorsFile(path);
    }
}
