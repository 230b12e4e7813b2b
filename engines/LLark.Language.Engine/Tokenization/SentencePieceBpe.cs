using System.Text;

namespace LLark.Language.Engine.Tokenization;

/// <summary>
/// SentencePiece's BPE encoder (bpe_model.cc and the identity normalizer, as in SentencePiece 0.1.97 to
/// 0.2.x) over a loaded <see cref="SentencePieceModel"/>, plus the per-id tables that decoding needs.
/// </summary>
/// <remarks>
/// Microsoft.ML.Tokenizers' LlamaTokenizer was tried first and is not used: when two candidate merges have
/// the same score it merges the rightmost pair first, where SentencePiece merges the leftmost, so it
/// encodes "a  b   c    d" (fixture model) and 48 × "a" (Llama-2's model) differently from SentencePiece.
/// It also returns no BOS for empty text, decodes &lt;unk&gt; to nothing instead of " ⁇ ", and gives one
/// U+FFFD for a cut-short UTF-8 sequence where SentencePiece gives one per byte.
/// </remarks>
internal sealed class SentencePieceBpe
{
    private const char SpaceSymbol = '\u2581';

    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> mergeable;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> reserved;
    private readonly float[] scores;
    private readonly SentencePieceType[] types;
    private readonly int[] byteIds = new int[256];
    private readonly string[] userDefined;
    private readonly bool hasUnused;

    public SentencePieceBpe(SentencePieceModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckSupported(model);
        Model = model;
        int count = model.Pieces.Count;
        scores = new float[count];
        types = new SentencePieceType[count];
        Surfaces = new string[count];
        ByteValues = new short[count];
        Array.Fill(byteIds, -1);
        // SentencePiece keeps NORMAL, USER_DEFINED and UNUSED pieces in one map (the only ones merges may
        // produce) and CONTROL, UNKNOWN and BYTE pieces in another, looked up first.
        var mergeablePieces = new Dictionary<string, int>(count, StringComparer.Ordinal);
        var reservedPieces = new Dictionary<string, int>(StringComparer.Ordinal);
        var userDefinedPieces = new List<string>();
        for (int id = 0; id < count; id++)
        {
            SentencePiece piece = model.Pieces[id];
            if (piece.Piece.Length == 0) throw new InvalidDataException($"piece {id} is empty");
            scores[id] = piece.Score;
            types[id] = piece.Type;
            Surfaces[id] = piece.Piece.Replace(SpaceSymbol, ' ');
            ByteValues[id] = -1;
            bool added = piece.Type is SentencePieceType.Normal or SentencePieceType.UserDefined or SentencePieceType.Unused
                ? mergeablePieces.TryAdd(piece.Piece, id)
                : reservedPieces.TryAdd(piece.Piece, id);
            if (!added) throw new InvalidDataException($"piece '{piece.Piece}' appears twice (id {id})");
            if (piece.Type == SentencePieceType.UserDefined) userDefinedPieces.Add(piece.Piece);
            if (piece.Type == SentencePieceType.Unused) hasUnused = true;
            if (piece.Type == SentencePieceType.Byte)
            {
                int value = ParseBytePiece(piece.Piece);
                ByteValues[id] = (short)value;
                byteIds[value] = id;
            }
        }
        mergeable = mergeablePieces.GetAlternateLookup<ReadOnlySpan<char>>();
        reserved = reservedPieces.GetAlternateLookup<ReadOnlySpan<char>>();
        // The prefix matcher prefers the longest user-defined symbol at a position.
        userDefined = [.. userDefinedPieces.OrderByDescending(p => p.Length)];

        CheckSpecialId(model.UnkId, SentencePieceType.Unknown, "unk_id", required: true);
        CheckSpecialId(model.BosId, SentencePieceType.Control, "bos_id", required: false);
        CheckSpecialId(model.EosId, SentencePieceType.Control, "eos_id", required: false);
        if (model.ByteFallback && Array.IndexOf(byteIds, -1) >= 0)
            throw new InvalidDataException("byte_fallback is set but the model lacks some of the pieces <0x00>..<0xFF>");
    }

    public SentencePieceModel Model { get; }

    public int Count => types.Length;

    /// <summary>Each piece with U+2581 replaced by a space, which is how decoding shows it.</summary>
    public string[] Surfaces { get; }

    /// <summary>The byte a BYTE piece stands for, or -1.</summary>
    public short[] ByteValues { get; }

    public SentencePieceType TypeOf(int id) => types[id];

    /// <summary>Appends the ids of <paramref name="text"/>, as SentencePieceProcessor.Encode(text) gives them.</summary>
    public void Encode(ReadOnlySpan<char> text, List<int> output)
    {
        if (text.IsEmpty) return;
        char[] normalized = Normalize(text);
        var symbols = new Symbol[normalized.Length];
        int symbolCount = Split(normalized, symbols);
        var agenda = new PriorityQueue<(int Left, int Right, int Length), (float Score, int Left)>(MergeOrder.Instance);
        Dictionary<string, (string Left, string Right)>? reverseMerges = hasUnused ? new(StringComparer.Ordinal) : null;

        for (int i = 1; i < symbolCount; i++) MaybeAddPair(i - 1, i);
        while (agenda.TryDequeue(out var top, out _))
        {
            ref Symbol left = ref symbols[top.Left];
            ref Symbol right = ref symbols[top.Right];
            // Stale entries: one side was merged away or grew since the pair was queued.
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != top.Length) continue;
            left.Length += right.Length;
            left.Next = right.Next;
            if (right.Next >= 0) symbols[right.Next].Prev = top.Left;
            right.Length = 0;
            MaybeAddPair(left.Prev, top.Left);
            MaybeAddPair(top.Left, left.Next);
        }

        for (int index = 0; index >= 0; index = symbols[index].Next)
        {
            ReadOnlySpan<char> piece = normalized.AsSpan(symbols[index].Start, symbols[index].Length);
            if (reverseMerges is null) Emit(piece, output);
            else Resegment(piece.ToString(), reverseMerges, output);
        }

        void MaybeAddPair(int left, int right)
        {
            if (left < 0 || right < 0 || symbols[left].Frozen || symbols[right].Frozen) return;
            int length = symbols[left].Length + symbols[right].Length;
            ReadOnlySpan<char> piece = normalized.AsSpan(symbols[left].Start, length);
            if (!mergeable.TryGetValue(piece, out int id)) return;
            agenda.Enqueue((left, right, length), (scores[id], left));
            if (reverseMerges is not null && types[id] == SentencePieceType.Unused)
            {
                reverseMerges[piece.ToString()] = (
                    normalized.AsSpan(symbols[left].Start, symbols[left].Length).ToString(),
                    normalized.AsSpan(symbols[right].Start, symbols[right].Length).ToString());
            }
        }
    }

    /// <summary>SentencePiece's PieceToId: reserved pieces first, then the others, else unk.</summary>
    private int PieceToId(ReadOnlySpan<char> piece)
    {
        if (reserved.TryGetValue(piece, out int id)) return id;
        return mergeable.TryGetValue(piece, out id) ? id : Model.UnkId;
    }

    /// <summary>An UNUSED piece that merging produced is split back into the two symbols it came from.</summary>
    private void Resegment(string piece, Dictionary<string, (string Left, string Right)> reverseMerges, List<int> output)
    {
        int id = PieceToId(piece);
        if (types[id] == SentencePieceType.Unused && reverseMerges.TryGetValue(piece, out var parts))
        {
            Resegment(parts.Left, reverseMerges, output);
            Resegment(parts.Right, reverseMerges, output);
            return;
        }
        Emit(piece, output);
    }

    private void Emit(ReadOnlySpan<char> piece, List<int> output)
    {
        int id = PieceToId(piece);
        if (types[id] != SentencePieceType.Unknown || !Model.ByteFallback)
        {
            output.Add(id);
            return;
        }
        // Only a single character can be unknown: every merge result is in the vocabulary.
        Span<byte> utf8 = stackalloc byte[Encoding.UTF8.GetMaxByteCount(piece.Length)];
        int written = Encoding.UTF8.GetBytes(piece, utf8);
        foreach (byte b in utf8[..written]) output.Add(byteIds[b]);
    }

    /// <summary>The identity normalizer: a dummy prefix, and spaces as U+2581.</summary>
    private char[] Normalize(ReadOnlySpan<char> text)
    {
        int offset = Model.AddDummyPrefix ? 1 : 0;
        var normalized = new char[text.Length + offset];
        if (offset == 1) normalized[0] = SpaceSymbol;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == ' ' && Model.EscapeWhitespaces) c = SpaceSymbol;
            // A lone surrogate is not a character; UTF-8 (which SentencePiece reads) turns it into U+FFFD.
            else if (char.IsHighSurrogate(c) ? i + 1 >= text.Length || !char.IsLowSurrogate(text[i + 1])
                     : char.IsLowSurrogate(c) && (i == 0 || !char.IsHighSurrogate(text[i - 1])))
                c = '\uFFFD';
            normalized[i + offset] = c;
        }
        return normalized;
    }

    /// <summary>Initial symbols: one per Unicode character, or a whole user-defined piece (never merged).</summary>
    private int Split(char[] normalized, Symbol[] symbols)
    {
        int count = 0;
        for (int position = 0; position < normalized.Length;)
        {
            int length = char.IsHighSurrogate(normalized[position]) ? 2 : 1;
            bool frozen = false;
            foreach (string piece in userDefined)
            {
                if (normalized.AsSpan(position).StartsWith(piece, StringComparison.Ordinal))
                {
                    length = piece.Length;
                    frozen = true;
                    break;
                }
            }
            symbols[count] = new Symbol
            {
                Start = position,
                Length = length,
                Prev = count - 1,
                Next = position + length < normalized.Length ? count + 1 : -1,
                Frozen = frozen,
            };
            count++;
            position += length;
        }
        return count;
    }

    private void CheckSpecialId(int id, SentencePieceType expected, string name, bool required)
    {
        if (id < 0 && !required) return;
        if (id < 0 || id >= types.Length || types[id] != expected)
            throw new InvalidDataException($"{name} {id} does not name a {expected} piece");
    }

    private static void CheckSupported(SentencePieceModel model)
    {
        if (model.ModelType != SentencePieceModelType.Bpe)
            throw new NotSupportedException($"SentencePiece model type {model.ModelType} is not supported; only BPE (Llama) is");
        if (model.NormalizerName is not ("identity" or "") || !model.PrecompiledCharsmap.IsEmpty)
            throw new NotSupportedException($"SentencePiece normalizer '{model.NormalizerName}' is not supported; only identity (Llama) is");
        if (model.RemoveExtraWhitespaces || model.TreatWhitespaceAsSuffix)
            throw new NotSupportedException("remove_extra_whitespaces and treat_whitespace_as_suffix are not supported (Llama sets neither)");
    }

    private static int ParseBytePiece(string piece)
    {
        if (piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
            && byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out byte value))
            return value;
        throw new InvalidDataException($"byte piece '{piece}' is not of the form <0xXX>");
    }

    private struct Symbol
    {
        public int Start;
        public int Length;
        public int Prev;
        public int Next;
        public bool Frozen;
    }

    /// <summary>Highest score first; on a tie the leftmost pair, as SentencePiece's SymbolPairComparator.</summary>
    private sealed class MergeOrder : IComparer<(float Score, int Left)>
    {
        public static readonly MergeOrder Instance = new();

        public int Compare((float Score, int Left) x, (float Score, int Left) y)
        {
            if (x.Score > y.Score) return -1;
            if (x.Score < y.Score) return 1;
            return x.Left.CompareTo(y.Left);
        }
    }
}
