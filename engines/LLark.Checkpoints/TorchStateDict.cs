namespace LLark.Checkpoints;

/// <summary>
/// Splits the object a torch.save pickle built into the state dict (named tensors) and everything else. Training
/// scripts save more than weights (Jukebox: <c>{hps, model, opt, step}</c>), so the state dict may sit under a key.
/// </summary>
internal static class TorchStateDict
{
    private const string ModulePrefix = "module.";

    private const int MaxMetadataDepth = 100;

    public static (List<(string Name, TensorRef Tensor)> Tensors, Dictionary<string, object?> Metadata) Split(
        object? root, string path, string? stateDictKey, bool stripModulePrefix)
    {
        var top = root as OrderedDictionary<object, object?>
            ?? throw new CheckpointException($"{path} holds a {TypeName(root)} at its top level, not a dict of tensors.");
        var stateDict = top;
        if (stateDictKey is not null)
        {
            if (!top.TryGetValue(stateDictKey, out var nested) || nested is not OrderedDictionary<object, object?> dict)
                throw new CheckpointException(
                    $"{path} has no dict under key '{stateDictKey}'; its top-level keys are: {string.Join(", ", top.Keys)}.");
            stateDict = dict;
        }

        var metadata = new Dictionary<string, object?>();
        foreach (var (key, value) in top)
        {
            string name = key.ToString() ?? "";
            bool isStateDictEntry = stateDictKey is null ? value is TensorRef : name == stateDictKey;
            if (!isStateDictEntry)
                metadata[name] = ToPlain(value, name, path, 0);
        }

        var tensors = new List<(string, TensorRef)>();
        var names = new HashSet<string>();
        foreach (var (key, value) in stateDict)
        {
            // Non-tensor values in a state dict (extra state, counters saved as ints) are not weights.
            if (value is not TensorRef tensor)
                continue;
            if (key is not string name)
                throw new CheckpointException($"{path} has a tensor under the non-string key {key}.");
            if (stripModulePrefix && name.StartsWith(ModulePrefix, StringComparison.Ordinal))
                name = name[ModulePrefix.Length..];
            if (!names.Add(name))
                throw new CheckpointException($"{path} holds two tensors named '{name}' once the '{ModulePrefix}' prefix is removed.");
            tensors.Add((name, tensor));
        }
        return (tensors, metadata);
    }

    /// <summary>
    /// Turns reader-internal values into public ones: tensors outside the state dict (optimizer state, say)
    /// become <see cref="TensorEntry"/> descriptions named by their path, globals their dotted names.
    /// </summary>
    /// <remarks>
    /// Pickles can build cycles (a list that holds itself) and arbitrarily deep nesting without recursion, so the
    /// depth is bounded here: real metadata nests a few levels, and unbounded recursion would overflow the stack.
    /// </remarks>
    private static object? ToPlain(object? value, string at, string path, int depth)
    {
        if (depth > MaxMetadataDepth && value is OrderedDictionary<object, object?> or List<object?> or object?[])
        {
            string where = at.Length > 60 ? at[..60] + "..." : at;
            throw new CheckpointException($"{path}: the value at '{where}' nests more than {MaxMetadataDepth} levels deep or contains itself.");
        }
        return value switch
        {
            TensorRef t => new TensorEntry(at, t.Storage.DType, t.Shape, path),
            OrderedDictionary<object, object?> dict => ToPlainDict(dict, at, path, depth),
            List<object?> list => list.Select((item, i) => ToPlain(item, $"{at}.{i}", path, depth + 1)).ToList(),
            object?[] tuple => tuple.Select((item, i) => ToPlain(item, $"{at}.{i}", path, depth + 1)).ToArray(),
            TorchGlobal g => $"{g.Module}.{g.Name}",
            StorageRef s => $"storage {s.Key}",
            _ => value,
        };
    }

    private static OrderedDictionary<object, object?> ToPlainDict(OrderedDictionary<object, object?> dict, string at, string path, int depth)
    {
        var plain = new OrderedDictionary<object, object?>();
        foreach (var (key, item) in dict)
            plain[key] = ToPlain(item, $"{at}.{key}", path, depth + 1);
        return plain;
    }

    private static string TypeName(object? value) => value?.GetType().Name ?? "None";
}
