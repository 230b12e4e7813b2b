using System.Text;

namespace LLark.Language.Engine.Tokenization;

/// <summary>
/// Streams the text of generated ids: <see cref="Push"/> takes one id and returns the text that is now
/// final, <see cref="Flush"/> returns what was held back. The deltas joined equal
/// <see cref="LlamaTextTokenizer.Decode"/> of all the ids, exactly. A delta never ends inside a UTF-8
/// character (so never holds a lone surrogate): byte-fallback pieces wait until they form a character or
/// can no longer form one (then U+FFFD, as SentencePiece decodes them). Constant work per id; one instance
/// per sequence, not thread-safe.
/// </summary>
public sealed class IncrementalDetokenizer : Generation.ITokenTextDecoder
{
    private readonly PieceDecoder decoder;
    private readonly StringBuilder buffer = new();

    /// <param name="tokenizer">The tokenizer whose ids are fed.</param>
    /// <param name="atStartOfText">
    /// True when the first id pushed starts the text (nothing before it but BOS): its U+2581 is dropped as
    /// SentencePiece's decode drops it, so the text has no stray leading space. False when the ids continue
    /// text that is already out (a reply after a prompt): a leading U+2581 is then a real space.
    /// </param>
    public IncrementalDetokenizer(LlamaTextTokenizer tokenizer, bool atStartOfText = true)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        decoder = new PieceDecoder(tokenizer, atStartOfText);
    }

    public string Push(int tokenId)
    {
        buffer.Clear();
        decoder.Push(tokenId, buffer);
        return buffer.ToString();
    }

    public string Flush()
    {
        buffer.Clear();
        decoder.Flush(buffer);
        return buffer.ToString();
    }
}
