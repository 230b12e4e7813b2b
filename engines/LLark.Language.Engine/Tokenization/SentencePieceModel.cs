namespace LLark.Language.Engine.Tokenization;

/// <summary>The piece types of sentencepiece_model.proto, with their wire values.</summary>
public enum SentencePieceType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>The model types of sentencepiece_model.proto, with their wire values.</summary>
public enum SentencePieceModelType
{
    Unigram = 1,
    Bpe = 2,
    Word = 3,
    Character = 4,
}

/// <summary>One vocabulary entry; its id is its index in <see cref="SentencePieceModel.Pieces"/>.</summary>
public readonly record struct SentencePiece(string Piece, float Score, SentencePieceType Type = SentencePieceType.Normal);

/// <summary>
/// The parts of a SentencePiece <c>ModelProto</c> (a <c>tokenizer.model</c> file) that encoding and decoding
/// read, plus the trainer settings that describe a Llama-style model. Property defaults are the proto's
/// defaults, so a file that omits a field reads as SentencePiece would read it. Fields not listed here
/// (input paths, self-test data, the denormalizer) are skipped on reading and not written.
/// </summary>
public sealed record SentencePieceModel
{
    public required IReadOnlyList<SentencePiece> Pieces { get; init; }

    // trainer_spec
    public SentencePieceModelType ModelType { get; init; } = SentencePieceModelType.Unigram;
    public float CharacterCoverage { get; init; } = 0.9995f;
    public int MaxSentencePieceLength { get; init; } = 16;
    public bool SplitByUnicodeScript { get; init; } = true;
    public bool SplitByWhitespace { get; init; } = true;
    public bool SplitByNumber { get; init; } = true;
    public bool TreatWhitespaceAsSuffix { get; init; }
    public bool SplitDigits { get; init; }
    public bool AllowWhitespaceOnlyPieces { get; init; }
    public bool ByteFallback { get; init; }
    public int UnkId { get; init; }
    public int BosId { get; init; } = 1;
    public int EosId { get; init; } = 2;
    public int PadId { get; init; } = -1;
    public string UnkSurface { get; init; } = " \u2047 ";
    public string UnkPiece { get; init; } = "<unk>";
    public string BosPiece { get; init; } = "<s>";
    public string EosPiece { get; init; } = "</s>";
    public string PadPiece { get; init; } = "<pad>";

    // normalizer_spec
    public string NormalizerName { get; init; } = "";
    public ReadOnlyMemory<byte> PrecompiledCharsmap { get; init; }
    public bool AddDummyPrefix { get; init; } = true;
    public bool RemoveExtraWhitespaces { get; init; } = true;
    public bool EscapeWhitespaces { get; init; } = true;

    /// <summary>
    /// A model with the trainer and normalizer settings of Meta's Llama-2 <c>tokenizer.model</c>: BPE, byte
    /// fallback, split digits, identity normalizer, a dummy prefix, extra whitespace kept, unk 0 / bos 1 /
    /// eos 2, no pad.
    /// </summary>
    public static SentencePieceModel Llama2(IReadOnlyList<SentencePiece> pieces) => new()
    {
        Pieces = pieces,
        ModelType = SentencePieceModelType.Bpe,
        CharacterCoverage = 0.99995f,
        SplitDigits = true,
        AllowWhitespaceOnlyPieces = true,
        ByteFallback = true,
        NormalizerName = "identity",
        RemoveExtraWhitespaces = false,
    };

    public static SentencePieceModel Load(string path) => Read(File.ReadAllBytes(path));

    public static SentencePieceModel Read(Stream stream)
    {
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return Read(copy.GetBuffer().AsSpan(0, (int)copy.Length));
    }

    public static SentencePieceModel Read(ReadOnlySpan<byte> data)
    {
        var pieces = new List<SentencePiece>();
        var model = new SentencePieceModel { Pieces = pieces };
        var reader = new ProtoWire.Reader(data);
        while (!reader.AtEnd)
        {
            var (field, wireType) = reader.ReadTag();
            switch (field, wireType)
            {
                case (1, ProtoWire.LengthDelimited): pieces.Add(ReadPiece(reader.ReadBytes())); break;
                case (2, ProtoWire.LengthDelimited): model = ReadTrainerSpec(reader.ReadBytes(), model); break;
                case (3, ProtoWire.LengthDelimited): model = ReadNormalizerSpec(reader.ReadBytes(), model); break;
                default: reader.Skip(wireType); break;
            }
        }
        if (pieces.Count == 0) throw new InvalidDataException("the SentencePiece model has no pieces");
        return model;
    }

    private static SentencePiece ReadPiece(ReadOnlySpan<byte> data)
    {
        string? piece = null;
        float score = 0;
        var type = SentencePieceType.Normal;
        var reader = new ProtoWire.Reader(data);
        while (!reader.AtEnd)
        {
            var (field, wireType) = reader.ReadTag();
            switch (field, wireType)
            {
                case (1, ProtoWire.LengthDelimited): piece = reader.ReadString(); break;
                case (2, ProtoWire.Fixed32): score = reader.ReadFloat(); break;
                case (3, ProtoWire.Varint): type = (SentencePieceType)reader.ReadInt32(); break;
                default: reader.Skip(wireType); break;
            }
        }
        if (piece is null) throw new InvalidDataException("a SentencePiece entry has no piece string");
        if (!Enum.IsDefined(type)) throw new InvalidDataException($"piece '{piece}' has unknown type {(int)type}");
        return new SentencePiece(piece, score, type);
    }

    private static SentencePieceModel ReadTrainerSpec(ReadOnlySpan<byte> data, SentencePieceModel model)
    {
        var reader = new ProtoWire.Reader(data);
        while (!reader.AtEnd)
        {
            var (field, wireType) = reader.ReadTag();
            model = (field, wireType) switch
            {
                (3, ProtoWire.Varint) => model with { ModelType = (SentencePieceModelType)reader.ReadInt32() },
                (10, ProtoWire.Fixed32) => model with { CharacterCoverage = reader.ReadFloat() },
                (20, ProtoWire.Varint) => model with { MaxSentencePieceLength = reader.ReadInt32() },
                (21, ProtoWire.Varint) => model with { SplitByUnicodeScript = reader.ReadBool() },
                (22, ProtoWire.Varint) => model with { SplitByWhitespace = reader.ReadBool() },
                (23, ProtoWire.Varint) => model with { SplitByNumber = reader.ReadBool() },
                (24, ProtoWire.Varint) => model with { TreatWhitespaceAsSuffix = reader.ReadBool() },
                (25, ProtoWire.Varint) => model with { SplitDigits = reader.ReadBool() },
                (26, ProtoWire.Varint) => model with { AllowWhitespaceOnlyPieces = reader.ReadBool() },
                (35, ProtoWire.Varint) => model with { ByteFallback = reader.ReadBool() },
                (40, ProtoWire.Varint) => model with { UnkId = reader.ReadInt32() },
                (41, ProtoWire.Varint) => model with { BosId = reader.ReadInt32() },
                (42, ProtoWire.Varint) => model with { EosId = reader.ReadInt32() },
                (43, ProtoWire.Varint) => model with { PadId = reader.ReadInt32() },
                (44, ProtoWire.LengthDelimited) => model with { UnkSurface = reader.ReadString() },
                (45, ProtoWire.LengthDelimited) => model with { UnkPiece = reader.ReadString() },
                (46, ProtoWire.LengthDelimited) => model with { BosPiece = reader.ReadString() },
                (47, ProtoWire.LengthDelimited) => model with { EosPiece = reader.ReadString() },
                (48, ProtoWire.LengthDelimited) => model with { PadPiece = reader.ReadString() },
                _ => Skip(ref reader, wireType, model),
            };
        }
        return model;
    }

    private static SentencePieceModel ReadNormalizerSpec(ReadOnlySpan<byte> data, SentencePieceModel model)
    {
        var reader = new ProtoWire.Reader(data);
        while (!reader.AtEnd)
        {
            var (field, wireType) = reader.ReadTag();
            model = (field, wireType) switch
            {
                (1, ProtoWire.LengthDelimited) => model with { NormalizerName = reader.ReadString() },
                (2, ProtoWire.LengthDelimited) => model with { PrecompiledCharsmap = ReadOptionalBytes(ref reader) },
                (3, ProtoWire.Varint) => model with { AddDummyPrefix = reader.ReadBool() },
                (4, ProtoWire.Varint) => model with { RemoveExtraWhitespaces = reader.ReadBool() },
                (5, ProtoWire.Varint) => model with { EscapeWhitespaces = reader.ReadBool() },
                _ => Skip(ref reader, wireType, model),
            };
        }
        return model;
    }

    /// <summary>An empty charsmap (as Llama's files carry) reads as no charsmap.</summary>
    private static ReadOnlyMemory<byte> ReadOptionalBytes(ref ProtoWire.Reader reader)
    {
        ReadOnlySpan<byte> bytes = reader.ReadBytes();
        return bytes.IsEmpty ? default : bytes.ToArray();
    }

    private static SentencePieceModel Skip(ref ProtoWire.Reader reader, int wireType, SentencePieceModel model)
    {
        reader.Skip(wireType);
        return model;
    }
}
