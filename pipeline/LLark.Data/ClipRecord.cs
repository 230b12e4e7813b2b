using System.Text.Json;
using System.Text.Json.Serialization;

namespace LLark.Data;

/// <summary>
/// One clip of a manifest (<c>manifest.jsonl</c>, one JSON object a line). Only <see cref="Audio"/> is required; every
/// label is optional so that real datasets with partial metadata (MusicCaps captions, MusicNet instruments, tags) fit
/// the same format. Fields this type does not name are kept in <see cref="Extra"/> and written back unchanged.
/// </summary>
public sealed record ClipRecord
{
    /// <summary>Stable id of the clip within its dataset; defaults to the audio path without extension.</summary>
    [JsonPropertyName("id")] public string? Id { get; init; }

    /// <summary>Audio file, relative to the manifest's folder (or absolute).</summary>
    [JsonPropertyName("audio")] public string Audio { get; init; } = "";

    /// <summary>Duration in seconds, where known.</summary>
    [JsonPropertyName("seconds")] public double? Seconds { get; init; }

    /// <summary>Tempo in beats per minute, counting the meter's beat (a quarter note in 3/4 and 4/4).</summary>
    [JsonPropertyName("tempo_bpm")] public double? TempoBpm { get; init; }

    /// <summary>Key as "&lt;tonic&gt; major|minor", tonics spelled C C# D Eb E F F# G Ab A Bb B.</summary>
    [JsonPropertyName("key")] public string? Key { get; init; }

    /// <summary>Time signature such as "4/4" or "3/4".</summary>
    [JsonPropertyName("meter")] public string? Meter { get; init; }

    /// <summary>General MIDI instrument names (or dataset instrument labels), melody first.</summary>
    [JsonPropertyName("instruments")] public IReadOnlyList<string>? Instruments { get; init; }

    /// <summary>Chords with their start times in seconds.</summary>
    [JsonPropertyName("chords")] public IReadOnlyList<TimedChord>? Chords { get; init; }

    [JsonPropertyName("genre")] public string? Genre { get; init; }

    [JsonPropertyName("style")] public string? Style { get; init; }

    /// <summary>A free-text description (MusicCaps-style caption), where the dataset has one.</summary>
    [JsonPropertyName("caption")] public string? Caption { get; init; }

    [JsonPropertyName("tags")] public IReadOnlyList<string>? Tags { get; init; }

    /// <summary>"train", "validation" or "test", where the dataset splits.</summary>
    [JsonPropertyName("split")] public string? Split { get; init; }

    /// <summary>Every other field of the line, kept as it was.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; init; }

    /// <summary>The id, or the audio path without its extension when the line has none.</summary>
    [JsonIgnore]
    public string ClipId => !string.IsNullOrEmpty(Id) ? Id : Path.ChangeExtension(Audio, null).Replace('\\', '/');
}

/// <summary>A chord symbol ("F#m", "G7", "Bbmaj7") sounding from <see cref="Time"/> seconds.</summary>
public sealed record TimedChord(
    [property: JsonPropertyName("time")] double Time,
    [property: JsonPropertyName("chord")] string Chord);
