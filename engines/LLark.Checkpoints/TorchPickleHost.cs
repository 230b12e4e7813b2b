namespace LLark.Checkpoints;

/// <summary>A global the allow-list accepted; only <see cref="TorchPickleHost"/> gives it meaning.</summary>
internal sealed record TorchGlobal(string Module, string Name);

/// <summary>A storage named by a persistent id: its key in the file, element type and length in elements.</summary>
internal sealed record StorageRef(string Key, StoredDType DType, long ElementCount);

/// <summary>A tensor as torch.save describes it: a view (offset, size, stride, in elements) of a storage.</summary>
internal sealed record TensorRef(StorageRef Storage, long Offset, long[] Shape, long[] Stride);

/// <summary>
/// Gives torch.save pickles their meaning while building nothing but data: tensors become
/// <see cref="TensorRef"/>s, storages <see cref="StorageRef"/>s. Any global outside the short allow-list below
/// is refused, so a checkpoint can never run code (the attack pickle files are known for).
/// </summary>
internal sealed class TorchPickleHost(string source) : IPickleHost
{
    private readonly Dictionary<string, StorageRef> storages = [];

    public IReadOnlyDictionary<string, StorageRef> Storages => storages;

    public object Global(string module, string name)
    {
        bool allowed = (module, name) switch
        {
            ("torch._utils", "_rebuild_tensor_v2") => true,
            ("torch._utils", "_rebuild_parameter") => true,
            ("torch._utils", "_rebuild_parameter_with_state") => true,
            ("collections", "OrderedDict") => true,
            ("torch", "Size") => true,
            ("torch", _) => StoredDTypes.FromTorchStorageClass(name) is not null,
            _ => false,
        };
        if (!allowed)
            throw new CheckpointException(
                $"{source}: the pickle refers to '{module}.{name}', which is not one of the globals that build tensors; refusing to load it.");
        return new TorchGlobal(module, name);
    }

    public object? Call(object callable, object?[] args)
    {
        var global = callable as TorchGlobal ?? throw Fail($"it calls a {callable.GetType().Name}, which is not callable");
        switch (global.Name)
        {
            case "_rebuild_tensor_v2":
                return RebuildTensor(args);
            case "_rebuild_parameter" or "_rebuild_parameter_with_state":
                // A Parameter is its data plus requires_grad and hooks, none of which matter for loading.
                return args.Length > 0 && args[0] is TensorRef data ? data : throw Fail("_rebuild_parameter has no tensor");
            case "OrderedDict" when args.Length == 0:
                return new OrderedDictionary<object, object?>();
            case "Size" when args is [object?[] dims]:
                return dims;
            default:
                throw Fail($"it calls {global.Module}.{global.Name} with arguments this reader does not expect");
        }
    }

    public object? PersistentLoad(object? id)
    {
        if (id is not object?[] { Length: >= 5 } parts || parts[0] is not "storage")
            throw Fail("a persistent id is not a ('storage', type, key, location, numel) tuple");
        if (parts[1] is not TorchGlobal { Module: "torch" } storageClass || StoredDTypes.FromTorchStorageClass(storageClass.Name) is not StoredDType dtype)
            throw Fail("a persistent id does not name a torch storage class");
        if (parts[2] is not string key || parts[4] is not long count || count < 0 || count > long.MaxValue / dtype.ElementSize())
            throw Fail("a persistent id has a malformed key or element count");
        // Legacy ids carry a sixth item, view_metadata, for the storage views of old torch versions; torch no longer sets it.
        if (parts.Length > 5 && parts[5] is not null)
            throw Fail($"storage '{key}' is a view into another storage, which this reader does not support");
        if (storages.TryGetValue(key, out var known))
        {
            // Views of one storage repeat its id; a second, different description means a corrupt file.
            return known.DType == dtype && known.ElementCount == count ? known : throw Fail($"storage '{key}' is described twice, differently");
        }
        return storages[key] = new StorageRef(key, dtype, count);
    }

    public void Build(object? target, object? state)
    {
        // OrderedDict state is the module version table (_metadata); it says nothing about tensor values.
        if (target is not OrderedDictionary<object, object?>)
            throw Fail($"it sets state on a {target?.GetType().Name ?? "None"}");
    }

    private TensorRef RebuildTensor(object?[] args)
    {
        if (args.Length < 4 || args[0] is not StorageRef storage || args[1] is not long offset
            || ToDims(args[2]) is not long[] shape || ToDims(args[3]) is not long[] stride || shape.Length != stride.Length)
            throw Fail("_rebuild_tensor_v2 has malformed (storage, offset, size, stride) arguments");
        if (offset < 0 || stride.Any(s => s < 0) || StoredDTypes.CheckedElementCount(shape) is null)
            throw Fail("a tensor has a negative offset or stride, or an impossible size");
        return new TensorRef(storage, offset, shape, stride);
    }

    private static long[]? ToDims(object? value) =>
        value is object?[] items && items.All(i => i is long) ? items.Cast<long>().ToArray() : null;

    private CheckpointException Fail(string reason) => new($"{source}: unexpected pickle content: {reason}.");
}
