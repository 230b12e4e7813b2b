namespace LLark.Data;

/// <summary>A manifest: the clips of a dataset with their labels, read from <c>manifest.jsonl</c>.</summary>
public sealed class Manifest
{
    private Manifest(string path, IReadOnlyList<ClipRecord> clips, IReadOnlyList<JsonLineError> errors)
    {
        Path = path;
        Directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        Clips = clips;
        Errors = errors;
    }

    public string Path { get; }

    /// <summary>The folder that relative audio paths are resolved against.</summary>
    public string Directory { get; }

    public IReadOnlyList<ClipRecord> Clips { get; }

    /// <summary>Lines that were skipped (corrupt JSON, no audio, a duplicate id), each with its line number.</summary>
    public IReadOnlyList<JsonLineError> Errors { get; }

    public static Manifest Load(string path)
    {
        var errors = new List<JsonLineError>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        List<ClipRecord> clips = JsonLines.Read<ClipRecord>(path, errors, clip =>
        {
            if (string.IsNullOrWhiteSpace(clip.Audio)) return "no \"audio\" field";
            if (!seen.Add(clip.ClipId)) return $"duplicate clip id \"{clip.ClipId}\"";
            return null;
        });
        return new Manifest(path, clips, errors);
    }

    /// <summary>The absolute path of a clip's audio.</summary>
    public string AudioPath(ClipRecord clip)
    {
        ArgumentNullException.ThrowIfNull(clip);
        return System.IO.Path.GetFullPath(System.IO.Path.Combine(Directory, clip.Audio));
    }
}
