using System.Text;

namespace LLark.Language.Engine.Tokenization;

/// <summary>
/// SentencePieceProcessor::Decode as a state machine that takes one id at a time, so that whole-sequence
/// decoding and streaming share one implementation and agree by construction. Text leaves as soon as it is
/// final; only a UTF-8 sequence that further byte pieces could still complete is held back (at most 3 bytes).
/// </summary>
internal sealed class PieceDecoder
{
    private const char ReplacementCharacter = '\uFFFD';

    private readonly LlamaTextTokenizer tokenizer;
    private readonly SentencePieceBpe vocabulary;
    private readonly byte[] pending = new byte[4];
    private int pendingCount;

    // SentencePiece strips the U+2581 of the first piece only while nothing has been written and no piece
    // has consumed it yet ("is_bos_ws" and "bos_ws_seen" in sentencepiece_processor.cc).
    private bool isBosWs;
    private bool bosWsSeen;
    private bool textEmpty;

    public PieceDecoder(LlamaTextTokenizer tokenizer, bool atStartOfText)
    {
        this.tokenizer = tokenizer;
        vocabulary = tokenizer.Vocabulary;
        isBosWs = atStartOfText;
        textEmpty = atStartOfText;
    }

    public void Push(int id, StringBuilder output)
    {
        if ((uint)id >= (uint)tokenizer.VocabSize)
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the vocabulary [0, {tokenizer.VocabSize})");
        if (id < vocabulary.Count && vocabulary.ByteValues[id] >= 0)
        {
            pending[pendingCount++] = (byte)vocabulary.ByteValues[id];
            DrainBytes(output, endOfRun: false);
            return;
        }

        DrainBytes(output, endOfRun: true);
        if (bosWsSeen || !textEmpty) isBosWs = false;
        bosWsSeen = false;
        string surface;
        if (id >= vocabulary.Count) surface = tokenizer.AddedTokens[id - vocabulary.Count];
        else
        {
            switch (vocabulary.TypeOf(id))
            {
                case SentencePieceType.Control:
                    return;
                case SentencePieceType.Unknown:
                    surface = vocabulary.Model.UnkSurface;
                    break;
                default:
                    surface = vocabulary.Surfaces[id];
                    if (isBosWs && vocabulary.Model.AddDummyPrefix && vocabulary.Model.Pieces[id].Piece[0] == '\u2581')
                    {
                        surface = surface[1..];
                        bosWsSeen = true;
                    }
                    break;
            }
        }
        Write(surface, output);
    }

    /// <summary>Ends the sequence: bytes that never became a character come out as U+FFFD, one per byte.</summary>
    public void Flush(StringBuilder output) => DrainBytes(output, endOfRun: true);

    /// <summary>
    /// Turns pending bytes into text the way SentencePiece's ProcessBytePieces does: a valid character
    /// where one starts, else one U+FFFD for the first byte and a fresh start at the next. A prefix that
    /// more bytes could complete waits, unless the run of byte pieces has ended.
    /// </summary>
    private void DrainBytes(StringBuilder output, bool endOfRun)
    {
        while (pendingCount > 0)
        {
            int needed = SequenceLength(pending[0]);
            int consumed;
            if (needed == 0) consumed = 0;
            else if (pendingCount >= needed) consumed = TryDecode(pending.AsSpan(0, needed), output) ? needed : 0;
            else if (!endOfRun && AllContinuationBytes(pending.AsSpan(1, pendingCount - 1))) return;
            else consumed = 0;

            if (consumed == 0)
            {
                Write(ReplacementCharacter, output);
                consumed = 1;
            }
            pending.AsSpan(consumed, pendingCount - consumed).CopyTo(pending);
            pendingCount -= consumed;
        }
    }

    /// <summary>SentencePiece's DecodeUTF8: no overlong forms, no surrogates, nothing above U+10FFFF.</summary>
    private bool TryDecode(ReadOnlySpan<byte> bytes, StringBuilder output)
    {
        for (int i = 1; i < bytes.Length; i++)
            if (!IsContinuation(bytes[i])) return false;
        int codePoint = bytes.Length switch
        {
            1 => bytes[0],
            2 => ((bytes[0] & 0x1F) << 6) | (bytes[1] & 0x3F),
            3 => ((bytes[0] & 0x0F) << 12) | ((bytes[1] & 0x3F) << 6) | (bytes[2] & 0x3F),
            _ => ((bytes[0] & 0x07) << 18) | ((bytes[1] & 0x3F) << 12) | ((bytes[2] & 0x3F) << 6) | (bytes[3] & 0x3F),
        };
        int minimum = bytes.Length switch { 1 => 0, 2 => 0x80, 3 => 0x800, _ => 0x10000 };
        if (codePoint < minimum || !Rune.IsValid(codePoint)) return false;
        Write(new Rune(codePoint), output);
        return true;
    }

    private static int SequenceLength(byte lead) => lead switch
    {
        < 0x80 => 1,
        >= 0xC0 and < 0xE0 => 2,
        >= 0xE0 and < 0xF0 => 3,
        >= 0xF0 and < 0xF8 => 4,
        _ => 0,
    };

    private static bool IsContinuation(byte b) => (b & 0xC0) == 0x80;

    private static bool AllContinuationBytes(ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
            if (!IsContinuation(b)) return false;
        return true;
    }

    private void Write(string text, StringBuilder output)
    {
        if (text.Length == 0) return;
        output.Append(text);
        textEmpty = false;
    }

    private void Write(char c, StringBuilder output)
    {
        output.Append(c);
        textEmpty = false;
    }

    private void Write(Rune rune, StringBuilder output)
    {
        Span<char> chars = stackalloc char[2];
        output.Append(chars[..rune.EncodeToUtf16(chars)]);
        textEmpty = false;
    }
}
