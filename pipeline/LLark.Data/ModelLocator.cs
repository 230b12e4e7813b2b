namespace LLark.Data;

/// <summary>Which checkpoint folder a tool or service runs when none is named, and where that choice came from.</summary>
public sealed record ResolvedModel(string Directory, string Source);

/// <summary>
/// Finds the model folders every tool and service runs by default: the repository's bundled <c>models/</c> folders
/// (<c>llark-demo</c>, the demonstration LLark that tools/make-demo.sh trains, and <c>spectral</c>, the training-free encoder it hears through) unless told otherwise. In order: the folder given on the command
/// line; the variable naming that model (<c>LLARK_MODEL</c>, <c>LLARK_ENCODER</c>); <c>$LLARK_MODELS_DIR/NAME</c>;
/// then <c>models/NAME</c> in the first folder above the executable, or above the working directory, that has one.
/// </summary>
public static class ModelLocator
{
    public const string ModelsDirVariable = "LLARK_MODELS_DIR";

    public static readonly ModelKind Language = new("LLARK_MODEL", "llark-demo", "--model");

    public static readonly ModelKind Encoder = new("LLARK_ENCODER", "spectral", "--encoder");

    public static ResolvedModel Resolve(ModelKind kind, string? given, Func<string, string?>? environment = null,
        IEnumerable<string>? searchFrom = null)
    {
        ArgumentNullException.ThrowIfNull(kind);
        environment ??= Environment.GetEnvironmentVariable;
        if (!string.IsNullOrWhiteSpace(given)) return Existing(given, kind.Option);
        if (environment(kind.Variable) is { Length: > 0 } named) return Existing(named, "$" + kind.Variable);
        if (environment(ModelsDirVariable) is { Length: > 0 } models)
            return Existing(Path.Combine(models, kind.BundledName), $"${ModelsDirVariable}/{kind.BundledName}");
        foreach (string start in searchFrom ?? [AppContext.BaseDirectory, Directory.GetCurrentDirectory()])
        {
            for (var dir = new DirectoryInfo(Path.GetFullPath(start)); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "models", kind.BundledName);
                if (Directory.Exists(candidate)) return new ResolvedModel(candidate, "bundled");
            }
        }
        throw new DirectoryNotFoundException(
            $"no {kind.Option} given and no bundled models/{kind.BundledName} found above the executable or the working directory " +
            $"(set {kind.Option}, ${kind.Variable} or ${ModelsDirVariable})");
    }

    private static ResolvedModel Existing(string path, string source)
    {
        string full = Path.GetFullPath(path);
        return Directory.Exists(full) ? new ResolvedModel(full, source)
            : throw new DirectoryNotFoundException($"{source}: model folder not found: {full}");
    }
}

/// <summary>A kind of model folder: the variable that names one, the bundled default's folder name, the CLI option.</summary>
public sealed record ModelKind(string Variable, string BundledName, string Option);
