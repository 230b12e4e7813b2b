using System.Text;
using LLark.Common;
using LLark.Language.Engine.Serving;

namespace LLark.Language.Engine.Multimodal;

/// <summary>One exchange of a conversation: the human's message and, for every turn but the last, the answer given.</summary>
public sealed record ChatTurn(string Human, string? Assistant = null);

/// <summary>
/// LLark's prompt template (LLaVA v0 style, not Llama-2's [INST]): the system line, a blank line, then per turn
/// <c>### Human: {message}\n</c> and <c>### Assistant: {answer}\n</c>, ending with the generation prompt
/// <c>### Assistant:</c>. The audio placeholder <c>&lt;audio&gt;</c> opens the first human message.
/// </summary>
public static class LLarkPrompt
{
    public const string SystemMessage =
        "A chat between a curious human and an artificial intelligence assistant. " +
        "The assistant gives helpful, detailed, and polite answers to the human's questions.";

    /// <summary>Where the audio goes in the text; expanded to start + F patches + end before tokenizing.</summary>
    public const string AudioPlaceholder = "<audio>";

    /// <summary>The tokenizer's added tokens the placeholder expands to: <see cref="AudioStart"/>, one patch per frame, <see cref="AudioEnd"/>.</summary>
    public const string AudioPatch = "<audio_patch>";

    public const string AudioStart = "<audio_start>";

    public const string AudioEnd = "<audio_end>";

    /// <summary>Generation stops when the answer contains this: the model's next turn marker.</summary>
    public const string StopString = "###";

    /// <summary>
    /// What a message may not contain: the placeholder and the audio tokens it expands to would splice audio where the
    /// caller's text is (or make the patches no longer one run), and the turn marker would start a turn of the
    /// caller's making, in either role.
    /// </summary>
    private static readonly string[] ReservedText = [AudioPlaceholder, AudioPatch, AudioStart, AudioEnd, StopString];

    /// <summary>
    /// Names the template by what it renders (a digest of a two-turn conversation with audio), so that state cached
    /// for prompts of one template is never served to prompts of an edited one.
    /// </summary>
    public static string TemplateId { get; } = "llava-v0:" +
        PromptKey.Digest(Render([new ChatTurn("q", "a"), new ChatTurn("q")], withAudio: true)).ToString("x32", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Renders the conversation; the last turn must await its answer.</summary>
    public static string Render(IReadOnlyList<ChatTurn> turns, bool withAudio)
    {
        if (turns.Count == 0) throw new InvalidRequestException("turns", "the conversation has no turns");
        var text = new StringBuilder(SystemMessage).Append("\n\n");
        for (int i = 0; i < turns.Count; i++)
        {
            ChatTurn turn = turns[i];
            if (string.IsNullOrWhiteSpace(turn.Human))
                throw new InvalidRequestException($"turns[{i}].human", $"turn {i} has an empty human message");
            RefuseReserved(turn.Human, $"turns[{i}].human", i);
            bool last = i == turns.Count - 1;
            if (last != turn.Assistant is null)
                throw new InvalidRequestException($"turns[{i}].assistant",
                    last ? "the last turn must not have an answer: it is the one to generate" : $"turn {i} needs the answer it was given");
            if (turn.Assistant is not null) RefuseReserved(turn.Assistant, $"turns[{i}].assistant", i);
            text.Append("### Human: ");
            if (i == 0 && withAudio) text.Append(AudioPlaceholder).Append('\n');
            text.Append(turn.Human).Append('\n');
            text.Append("### Assistant:");
            if (!last) text.Append(' ').Append(turn.Assistant).Append('\n');
        }
        return text.ToString();
    }

    private static void RefuseReserved(string message, string field, int turn)
    {
        foreach (string reserved in ReservedText)
        {
            if (message.Contains(reserved, StringComparison.Ordinal))
                throw new InvalidRequestException(field, $"turn {turn} contains '{reserved}', which the template reserves");
        }
    }
}
