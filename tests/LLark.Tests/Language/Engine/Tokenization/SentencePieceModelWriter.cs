using LLark.Language.Engine.Tokenization;

namespace LLark.Tests.Language.Engine.Tokenization;

/// <summary>
/// Writes a <see cref="SentencePieceModel"/> as a SentencePiece <c>ModelProto</c> that SentencePiece itself
/// and <see cref="LlamaTextTokenizer"/> load. Used to rebuild a Llama <c>tokenizer.model</c> from a vocabulary
/// and merge list published elsewhere (see tests/fixtures/llama2-tokenizer-model/README.md).
/// </summary>
internal static class SentencePieceModelWriter
{
    public static void Save(SentencePieceModel model, string path) => File.WriteAllBytes(path, ToBytes(model));

    public static byte[] ToBytes(SentencePieceModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var root = new ProtoWireWriter();
        foreach (SentencePiece piece in model.Pieces)
        {
            var entry = new ProtoWireWriter();
            entry.WriteString(1, piece.Piece);
            entry.WriteFloat(2, piece.Score);
            // NORMAL is the proto default; SentencePiece leaves it out, and so do we.
            if (piece.Type != SentencePieceType.Normal) entry.WriteInt32(3, (int)piece.Type);
            root.WriteMessage(1, entry);
        }
        root.WriteMessage(2, TrainerSpec(model));
        root.WriteMessage(3, NormalizerSpec(model));
        return root.ToArray();
    }

    private static ProtoWireWriter TrainerSpec(SentencePieceModel model)
    {
        var spec = new ProtoWireWriter();
        spec.WriteInt32(3, (int)model.ModelType);
        spec.WriteInt32(4, model.Pieces.Count);
        spec.WriteFloat(10, model.CharacterCoverage);
        spec.WriteInt32(20, model.MaxSentencePieceLength);
        spec.WriteBool(21, model.SplitByUnicodeScript);
        spec.WriteBool(22, model.SplitByWhitespace);
        spec.WriteBool(23, model.SplitByNumber);
        spec.WriteBool(24, model.TreatWhitespaceAsSuffix);
        spec.WriteBool(25, model.SplitDigits);
        spec.WriteBool(26, model.AllowWhitespaceOnlyPieces);
        spec.WriteBool(35, model.ByteFallback);
        spec.WriteInt32(40, model.UnkId);
        spec.WriteInt32(41, model.BosId);
        spec.WriteInt32(42, model.EosId);
        spec.WriteInt32(43, model.PadId);
        spec.WriteString(44, model.UnkSurface);
        spec.WriteString(45, model.UnkPiece);
        spec.WriteString(46, model.BosPiece);
        spec.WriteString(47, model.EosPiece);
        spec.WriteString(48, model.PadPiece);
        return spec;
    }

    private static ProtoWireWriter NormalizerSpec(SentencePieceModel model)
    {
        var spec = new ProtoWireWriter();
        spec.WriteString(1, model.NormalizerName);
        spec.WriteBytes(2, model.PrecompiledCharsmap.Span);
        spec.WriteBool(3, model.AddDummyPrefix);
        spec.WriteBool(4, model.RemoveExtraWhitespaces);
        spec.WriteBool(5, model.EscapeWhitespaces);
        return spec;
    }
}
