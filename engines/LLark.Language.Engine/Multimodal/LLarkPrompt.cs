using System.Text;
using LLark.Common;

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

    /// <summary>Generation stops when the answer contains this: the model's next turn marker.</summary>
    public const string StopString = "###";

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
            if (turn.Human.Contains(AudioPlaceholder, StringComparison.Ordinal) || turn.Human.Contains(StopString, StringComparison.Ordinal))
                throw new InvalidRequestException($"turns[{i}].human",
                    $"turn {i} contains '{AudioPlaceholder}' or '{StopString}', which the template reserves");
            bool last = i == turns.Count - 1;
            if (last != turn.Assistant is null)
                throw new InvalidRequestException($"turns[{i}].assistant",
                    last ? "the last turn must not have an answer: it is the one to generate" : $"turn {i} needs the answer it was given");
            text.Append("### Human: ");
            if (i == 0 && withAudio) text.Append(AudioPlaceholder).Append('\n');
            text.Append(turn.Human).Append('\n');
            text.Append("### Assistant:");
            if (!last) text.Append(' ').Append(turn.Assistant).Append('\n');
        }
        return text.ToString();
    }
}
