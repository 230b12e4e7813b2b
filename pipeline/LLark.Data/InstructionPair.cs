using System.Text.Json.Serialization;

namespace LLark.Data;

/// <summary>
/// One training example of <c>pairs.jsonl</c>: a question about a clip and its answer. <see cref="Family"/> is one of
/// LLark's three: "understanding" (MIR facts), "captioning" or "reasoning"; <see cref="Task"/> names what is asked
/// ("tempo", "key", "instrument", "genre", "caption", ...). Multi-turn conversations are consecutive pairs of the
/// same clip with the same <see cref="Conversation"/> id, in order.
/// </summary>
public sealed record InstructionPair
{
    [JsonPropertyName("clip_id")] public string ClipId { get; init; } = "";

    [JsonPropertyName("family")] public string Family { get; init; } = "";

    [JsonPropertyName("task")] public string? Task { get; init; }

    [JsonPropertyName("query")] public string Query { get; init; } = "";

    [JsonPropertyName("response")] public string Response { get; init; } = "";

    [JsonPropertyName("conversation")] public string? Conversation { get; init; }

    public static readonly IReadOnlyList<string> Families = ["understanding", "captioning", "reasoning"];
}
