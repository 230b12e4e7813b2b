using LLark.Language.Engine.Tokenization;

namespace LLark.Tests.Language.Engine.Tokenization;

public sealed class SentencePieceModelWriterTests
{
    [Fact]
    public void WritingAndReadingKeepsPiecesAndSettings()
    {
        SentencePieceModel original = SentencePieceModel.Load(TokenizerFixtures.TinyModelPath);
        SentencePieceModel copy = SentencePieceModel.Read(SentencePieceModelWriter.ToBytes(original));
        Assert.Equal(original.Pieces, copy.Pieces);
        Assert.Equal(original with { Pieces = copy.Pieces, PrecompiledCharsmap = copy.PrecompiledCharsmap }, copy);
        Assert.True(copy.PrecompiledCharsmap.IsEmpty);
    }

    /// <summary>The fixture model was trained with Llama-2's settings, so Llama2() over its pieces must encode identically.</summary>
    [Fact]
    public void Llama2SettingsOverTheTinyPiecesReproduceTheTinyEncodings()
    {
        SentencePieceModel tiny = SentencePieceModel.Load(TokenizerFixtures.TinyModelPath);
        SentencePieceModel rebuilt = SentencePieceModel.Read(SentencePieceModelWriter.ToBytes(SentencePieceModel.Llama2(tiny.Pieces)));
        Assert.Equal(
            (SentencePieceModelType.Bpe, true, true, true, false, "identity", 0, 1, 2, -1),
            (rebuilt.ModelType, rebuilt.ByteFallback, rebuilt.SplitDigits, rebuilt.AddDummyPrefix, rebuilt.RemoveExtraWhitespaces,
                rebuilt.NormalizerName, rebuilt.UnkId, rebuilt.BosId, rebuilt.EosId, rebuilt.PadId));
        var tokenizer = new LlamaTextTokenizer(rebuilt);
        foreach (EncodingCase c in TokenizerFixtures.TinyCases)
        {
            Assert.Equal(c.Ids, tokenizer.Encode(c.Text, addBos: false));
            Assert.Equal(c.Decoded, tokenizer.Decode(c.Ids));
        }
    }

    /// <summary>The committed Llama-2 model is exactly what the writer produces, with the scores its README describes.</summary>
    [Fact]
    public void RebuiltLlama2ModelIsTheWritersOutput()
    {
        byte[] file = File.ReadAllBytes(TokenizerFixtures.Llama2ModelPath);
        SentencePieceModel model = SentencePieceModel.Read(file);
        Assert.Equal(file, SentencePieceModelWriter.ToBytes(model));
        Assert.Equal(SentencePieceModel.Llama2(model.Pieces), model);
        Assert.Equal(32000, model.Pieces.Count);
        Assert.Equal(new SentencePiece("<unk>", 0, SentencePieceType.Unknown), model.Pieces[0]);
        Assert.Equal(new SentencePiece("</s>", 0, SentencePieceType.Control), model.Pieces[2]);
        Assert.Equal(new SentencePiece("<0xFF>", 0, SentencePieceType.Byte), model.Pieces[258]);
        for (int id = 259; id < model.Pieces.Count; id++)
        {
            SentencePiece piece = model.Pieces[id];
            Assert.Equal(SentencePieceType.Normal, piece.Type);
            bool whitespaceOnly = piece.Piece.All(c => c == '\u2581');
            Assert.Equal(whitespaceOnly ? -1e9f : -(id - 259), piece.Score);
        }
    }

    [Fact]
    public void UnsupportedModelsAreRefused()
    {
        SentencePieceModel tiny = SentencePieceModel.Load(TokenizerFixtures.TinyModelPath);
        Assert.Throws<NotSupportedException>(() => new LlamaTextTokenizer(tiny with { ModelType = SentencePieceModelType.Unigram }));
        Assert.Throws<NotSupportedException>(() => new LlamaTextTokenizer(tiny with { NormalizerName = "nmt_nfkc" }));
        Assert.Throws<NotSupportedException>(() => new LlamaTextTokenizer(tiny with { RemoveExtraWhitespaces = true }));
        Assert.Throws<InvalidDataException>(() => new LlamaTextTokenizer(tiny with { UnkId = 5 }));
        Assert.Throws<InvalidDataException>(() => SentencePieceModel.Read([0x0A, 0x05, 0x0A]));
    }
}
