using System.Text.Json.Serialization;

namespace LLark.Data;

/// <summary>
/// A dataset encoded through the encoder: a folder holding <c>embeddings.jsonl</c> (one <see cref="EmbeddingEntry"/>
/// a clip) and one float32 <c>.npy</c> of shape [frames, width] a clip. Every entry states the encoder, layer and
/// fps it was made with, so training can refuse a mix and write them into the checkpoint.
/// </summary>
public sealed record EmbeddingEntry
{
    [JsonPropertyName("clip_id")] public string ClipId { get; init; } = "";

    /// <summary>The .npy file, relative to the embedding set's folder.</summary>
    [JsonPropertyName("file")] public string File { get; init; } = "";

    [JsonPropertyName("frames")] public int Frames { get; init; }

    [JsonPropertyName("width")] public int Width { get; init; }

    [JsonPropertyName("fps")] public double Fps { get; init; }

    /// <summary>The encoder's model name (for example "jukebox-5b" or "jukebox-tiny").</summary>
    [JsonPropertyName("encoder")] public string Encoder { get; init; } = "";

    /// <summary>How many prior blocks the activations were taken after.</summary>
    [JsonPropertyName("layer")] public int Layer { get; init; }

    /// <summary>The encoder service's content address of the embedding, where it came from the service.</summary>
    [JsonPropertyName("embedding_id")] public string? EmbeddingId { get; init; }
}

/// <summary>Reads an embedding set written by <c>llark data embed</c>.</summary>
public sealed class EmbeddingSet
{
    public const string IndexFile = "embeddings.jsonl";

    private readonly Dictionary<string, EmbeddingEntry> _byClip;

    private EmbeddingSet(string directory, Dictionary<string, EmbeddingEntry> byClip, IReadOnlyList<JsonLineError> errors)
    {
        Directory = directory;
        _byClip = byClip;
        Errors = errors;
    }

    public string Directory { get; }

    public IReadOnlyCollection<EmbeddingEntry> Entries => _byClip.Values;

    public IReadOnlyList<JsonLineError> Errors { get; }

    /// <summary>Loads the index; a later line for the same clip replaces an earlier one (a re-embed).</summary>
    public static EmbeddingSet Load(string directory)
    {
        var errors = new List<JsonLineError>();
        string index = Path.Combine(directory, IndexFile);
        var byClip = new Dictionary<string, EmbeddingEntry>(StringComparer.Ordinal);
        if (System.IO.File.Exists(index))
        {
            foreach (EmbeddingEntry e in JsonLines.Read<EmbeddingEntry>(index, errors,
                         e => string.IsNullOrEmpty(e.ClipId) || string.IsNullOrEmpty(e.File) ? "no clip_id or file" : null))
                byClip[e.ClipId] = e;
        }
        return new EmbeddingSet(Path.GetFullPath(directory), byClip, errors);
    }

    public bool TryGet(string clipId, out EmbeddingEntry entry) => _byClip.TryGetValue(clipId, out entry!);

    /// <summary>Reads a clip's frames, row-major [frames, width], checking the file against its entry.</summary>
    public float[] ReadFrames(EmbeddingEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        string path = Path.Combine(Directory, entry.File);
        (float[] data, long[] shape) = Npy.ReadFloat32(path);
        if (shape.Length != 2 || shape[0] != entry.Frames || shape[1] != entry.Width)
            throw new InvalidDataException(
                $"{path}: shape [{string.Join(", ", shape)}] but the index says [{entry.Frames}, {entry.Width}]");
        return data;
    }
}
