using System.Buffers;
using System.Text;
using System.Text.Json;

namespace LLark.Language.Engine.Tokenization;

/// <summary>
/// The Llama-2 tokenizer as LLark trained with it: a SentencePiece BPE model (<c>tokenizer.model</c>) that
/// encodes and decodes exactly as SentencePiece does, plus added tokens numbered right after the base
/// vocabulary. Immutable and safe to share between threads.
/// </summary>
/// <remarks>
/// Text around added tokens is encoded the way LLark's training code did it: Hugging Face transformers
/// 4.29.2, slow LlamaTokenizer (<c>use_fast=False</c>), tokens added with <c>add_tokens(...,
/// special_tokens=True)</c> and <c>add_special_tokens({"pad_token": "[PAD]"})</c> as plain strings. That
/// tokenizer splits the text at every added token, strips whitespace on both sides of each added token
/// (its default for added tokens that are not AddedToken objects), and encodes each remaining piece of text
/// on its own with SentencePiece, so each one gets its own dummy-prefix U+2581. For
/// "### Human: &lt;audio_start&gt;…&lt;audio_end&gt;\nWhat key?" that means "### Human:" and "What key?" are
/// encoded separately and the space and newline next to the audio tokens vanish. Pass
/// <c>stripWhitespaceAroundAddedTokens: false</c> to keep that whitespace (still one SentencePiece call per
/// piece of text, as transformers' legacy Llama tokenizer does for AddedTokens without lstrip/rstrip).
/// Unlike transformers, the literal text "&lt;s&gt;", "&lt;/s&gt;" and "&lt;unk&gt;" stays plain text, as
/// SentencePiece treats it, so user text can never inject control ids.
/// </remarks>
public sealed class LlamaTextTokenizer
{
    /// <summary>Name of the Hugging Face file (token → id) that lists added tokens beside a tokenizer.</summary>
    public const string AddedTokensFileName = "added_tokens.json";

    private readonly Dictionary<string, int> addedTokenIds;
    private readonly SearchValues<char> addedTokenFirstChars;
    private readonly string[] addedTokensLongestFirst;

    public LlamaTextTokenizer(SentencePieceModel model, IReadOnlyList<string>? addedTokens = null,
        bool stripWhitespaceAroundAddedTokens = true)
    {
        Vocabulary = new SentencePieceBpe(model);
        AddedTokens = [.. addedTokens ?? LLarkAddedTokens];
        StripWhitespaceAroundAddedTokens = stripWhitespaceAroundAddedTokens;
        addedTokenIds = new Dictionary<string, int>(StringComparer.Ordinal);
        var pieces = model.Pieces.Select(p => p.Piece).ToHashSet(StringComparer.Ordinal);
        for (int i = 0; i < AddedTokens.Count; i++)
        {
            string token = AddedTokens[i];
            if (string.IsNullOrEmpty(token)) throw new ArgumentException("an added token is empty", nameof(addedTokens));
            if (pieces.Contains(token))
                throw new ArgumentException($"added token '{token}' is already a piece of the base vocabulary", nameof(addedTokens));
            if (!addedTokenIds.TryAdd(token, BaseVocabSize + i))
                throw new ArgumentException($"added token '{token}' appears twice", nameof(addedTokens));
        }
        addedTokenFirstChars = SearchValues.Create([.. AddedTokens.Select(t => t[0]).Distinct()]);
        addedTokensLongestFirst = [.. AddedTokens.OrderByDescending(t => t.Length)];
    }

    /// <summary>LLark's added tokens, in the order that gives them ids 32000..32003 after Llama-2's vocabulary.</summary>
    public static IReadOnlyList<string> LLarkAddedTokens { get; } = ["[PAD]", "<audio_patch>", "<audio_start>", "<audio_end>"];

    /// <summary>Added tokens; the one at index i has id <see cref="BaseVocabSize"/> + i.</summary>
    public IReadOnlyList<string> AddedTokens { get; }

    public bool StripWhitespaceAroundAddedTokens { get; }

    /// <summary>Pieces in tokenizer.model (32000 for Llama-2).</summary>
    public int BaseVocabSize => Vocabulary.Count;

    /// <summary>Base vocabulary plus added tokens: the number of embedding rows a checkpoint needs.</summary>
    public int VocabSize => Vocabulary.Count + AddedTokens.Count;

    public int BosId => Vocabulary.Model.BosId;

    public int EosId => Vocabulary.Model.EosId;

    public int UnkId => Vocabulary.Model.UnkId;

    internal SentencePieceBpe Vocabulary { get; }

    /// <summary>
    /// Loads <c>tokenizer.model</c>. Added tokens: <paramref name="addedTokens"/> when given, else the
    /// <c>added_tokens.json</c> beside the model when there is one, else <see cref="LLarkAddedTokens"/>.
    /// </summary>
    public static LlamaTextTokenizer Load(string modelPath, IReadOnlyList<string>? addedTokens = null,
        bool stripWhitespaceAroundAddedTokens = true)
    {
        SentencePieceModel model = SentencePieceModel.Load(modelPath);
        if (addedTokens is null)
        {
            string beside = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(modelPath))!, AddedTokensFileName);
            if (File.Exists(beside)) addedTokens = ReadAddedTokensJson(beside, model.Pieces.Count);
        }
        return new LlamaTextTokenizer(model, addedTokens, stripWhitespaceAroundAddedTokens);
    }

    /// <summary>
    /// Loads the tokenizer that goes with a model of <paramref name="modelVocabSize"/> embedding rows: the added
    /// tokens of <see cref="Load"/> when they fit (LLark's 32004), none when only the base pieces do (plain Llama-2).
    /// </summary>
    public static LlamaTextTokenizer LoadForModel(string modelPath, int modelVocabSize)
    {
        LlamaTextTokenizer full = Load(modelPath);
        if (full.VocabSize <= modelVocabSize) return full;
        if (full.BaseVocabSize <= modelVocabSize && !File.Exists(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(modelPath))!, AddedTokensFileName)))
            return new LlamaTextTokenizer(full.Vocabulary.Model, [], full.StripWhitespaceAroundAddedTokens);
        throw new InvalidDataException(
            $"{modelPath}: the tokenizer has {full.VocabSize} tokens ({full.BaseVocabSize} pieces + {full.AddedTokens.Count} added) " +
            $"but the model has only {modelVocabSize} embedding rows");
    }

    public static LlamaTextTokenizer FromStream(Stream modelStream, IReadOnlyList<string>? addedTokens = null,
        bool stripWhitespaceAroundAddedTokens = true)
        => new(SentencePieceModel.Read(modelStream), addedTokens, stripWhitespaceAroundAddedTokens);

    /// <summary>
    /// Reads a Hugging Face <c>added_tokens.json</c> (a JSON object, token → id) and returns the tokens in id
    /// order. The ids must be exactly <paramref name="baseVocabSize"/>, +1, +2, ... as transformers assigns them.
    /// </summary>
    public static IReadOnlyList<string> ReadAddedTokensJson(string path, int baseVocabSize)
    {
        var entries = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(path))
            ?? throw new InvalidDataException($"{path}: expected a JSON object of token → id");
        var ordered = entries.OrderBy(e => e.Value).ToList();
        for (int i = 0; i < ordered.Count; i++)
        {
            if (ordered[i].Value != baseVocabSize + i)
                throw new InvalidDataException(
                    $"{path}: added token '{ordered[i].Key}' has id {ordered[i].Value}, expected {baseVocabSize + i} " +
                    $"(ids must follow the base vocabulary of {baseVocabSize} without gaps)");
        }
        return [.. ordered.Select(e => e.Key)];
    }

    public bool TryGetAddedTokenId(string token, out int id) => addedTokenIds.TryGetValue(token, out id);

    /// <summary>The piece string of an id (with U+2581 for spaces), or the text of an added token.</summary>
    public string IdToPiece(int id)
    {
        if ((uint)id >= (uint)VocabSize)
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the vocabulary [0, {VocabSize})");
        return id < BaseVocabSize ? Vocabulary.Model.Pieces[id].Piece : AddedTokens[id - BaseVocabSize];
    }

    /// <summary>
    /// Encodes as SentencePiece's <c>encode(text)</c> does, with BOS first when <paramref name="addBos"/>
    /// (so empty text gives just [BOS]); added tokens become their ids (see the class remarks). Never adds EOS.
    /// </summary>
    public int[] Encode(string text, bool addBos)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 2);
        if (addBos)
        {
            if (BosId < 0) throw new InvalidOperationException("this tokenizer.model defines no BOS piece");
            ids.Add(BosId);
        }
        int textStart = 0;
        bool afterAddedToken = false;
        int position = 0;
        while (TryFindAddedToken(text, position, out int tokenStart, out string? token))
        {
            ReadOnlySpan<char> segment = text.AsSpan(textStart, tokenStart - textStart);
            if (StripWhitespaceAroundAddedTokens) segment = TrimPythonWhitespace(segment, start: afterAddedToken, end: true);
            Vocabulary.Encode(segment, ids);
            ids.Add(addedTokenIds[token]);
            position = textStart = tokenStart + token.Length;
            afterAddedToken = true;
        }
        ReadOnlySpan<char> rest = text.AsSpan(textStart);
        if (StripWhitespaceAroundAddedTokens) rest = TrimPythonWhitespace(rest, start: afterAddedToken, end: false);
        Vocabulary.Encode(rest, ids);
        return [.. ids];
    }

    /// <summary>
    /// Decodes as SentencePiece's <c>decode(ids)</c> does: BOS and EOS give no text, byte pieces become
    /// bytes (U+FFFD for each byte that is not part of valid UTF-8), U+2581 becomes a space, one leading
    /// space is removed, and &lt;unk&gt; shows as " ⁇ ". Added tokens come out as their text.
    /// </summary>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var decoder = new PieceDecoder(this, atStartOfText: true);
        var text = new StringBuilder();
        foreach (int id in ids) decoder.Push(id, text);
        decoder.Flush(text);
        return text.ToString();
    }

    /// <inheritdoc cref="IncrementalDetokenizer(LlamaTextTokenizer, bool)"/>
    public IncrementalDetokenizer CreateDetokenizer(bool atStartOfText = true) => new(this, atStartOfText);

    /// <summary>The first added token at or after <paramref name="from"/>; the longest where several start there.</summary>
    private bool TryFindAddedToken(string text, int from, out int start, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? token)
    {
        token = null;
        start = -1;
        if (AddedTokens.Count == 0) return false;
        while (from < text.Length)
        {
            int candidate = text.AsSpan(from).IndexOfAny(addedTokenFirstChars);
            if (candidate < 0) return false;
            candidate += from;
            foreach (string t in addedTokensLongestFirst)
            {
                if (string.CompareOrdinal(text, candidate, t, 0, t.Length) == 0)
                {
                    start = candidate;
                    token = t;
                    return true;
                }
            }
            from = candidate + 1;
        }
        return false;
    }

    /// <summary>Python's str.strip: the characters for which str.isspace() is true.</summary>
    private static ReadOnlySpan<char> TrimPythonWhitespace(ReadOnlySpan<char> text, bool start, bool end)
    {
        if (start) while (!text.IsEmpty && IsPythonWhitespace(text[0])) text = text[1..];
        if (end) while (!text.IsEmpty && IsPythonWhitespace(text[^1])) text = text[..^1];
        return text;
    }

    private static bool IsPythonWhitespace(char c) =>
        c is (>= '\t' and <= '\r') or (>= '\x1C' and <= ' ') or '\x85' or '\xA0' or '\u1680'
            or (>= '\u2000' and <= '\u200A') or '\u2028' or '\u2029' or '\u202F' or '\u205F' or '\u3000';
}
