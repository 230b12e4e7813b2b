using System.Text.Json;
using LLark.Language.Engine.Tokenization;

namespace LLark.Tests.Language.Engine.Tokenization;

public sealed class LlamaTextTokenizerTests
{
    public static TheoryData<string> TinyCaseNames => TokenizerFixtures.Names(TokenizerFixtures.TinyCases);

    public static TheoryData<string> Llama2CaseNames => TokenizerFixtures.Names(TokenizerFixtures.Llama2Cases);

    [Theory]
    [MemberData(nameof(TinyCaseNames))]
    public void TinyModelMatchesSentencePiece(string name) =>
        AssertMatchesRecording(TokenizerFixtures.Tiny, TokenizerFixtures.TinyCases.Single(c => c.Name == name));

    [Theory]
    [MemberData(nameof(Llama2CaseNames))]
    public void RebuiltLlama2ModelMatchesSentencePieceWithMetasModel(string name) =>
        AssertMatchesRecording(TokenizerFixtures.Llama2, TokenizerFixtures.Llama2Cases.Single(c => c.Name == name));

    [Fact]
    public void RebuiltLlama2ModelMatchesEveryLlamaTokenizerJsEncodeCase()
    {
        JsonElement cases = TokenizerFixtures.ReadJson("llama-tiny/llama2-tokenizer/llama-tokenizer-js-cases.json");
        int count = 0;
        foreach (JsonElement c in cases.GetProperty("encode_cases").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            int[] expected = TokenizerFixtures.Ints(c.GetProperty("ids_with_bos"));
            Assert.Equal(expected, TokenizerFixtures.Llama2.Encode(text, addBos: true));
            Assert.Equal(text, TokenizerFixtures.Llama2.Decode(expected));
            count++;
        }
        Assert.Equal(12, count);
    }

    /// <summary>
    /// llama-tokenizer-js's decode flags map onto SentencePiece's rule: add_preceding_space=true is decoding
    /// from the start of text (one leading space removed), false is decoding a continuation. Its rendering
    /// of id 1 as the literal "&lt;s&gt;" (add_bos_token=false) is that library's own and is skipped.
    /// </summary>
    [Fact]
    public void LlamaTokenizerJsDecodeCasesFollowTheSentencePieceRule()
    {
        JsonElement cases = TokenizerFixtures.ReadJson("llama-tiny/llama2-tokenizer/llama-tokenizer-js-cases.json");
        int count = 0;
        foreach (JsonElement c in cases.GetProperty("decode_cases").EnumerateArray())
        {
            int[] ids = TokenizerFixtures.Ints(c.GetProperty("ids"));
            if (!c.GetProperty("add_bos_token").GetBoolean() && ids[0] == 1) continue;
            var detokenizer = TokenizerFixtures.Llama2.CreateDetokenizer(c.GetProperty("add_preceding_space").GetBoolean());
            string text = string.Concat(ids.Select(detokenizer.Push)) + detokenizer.Flush();
            Assert.Equal(c.GetProperty("output").GetString(), text);
            count++;
        }
        Assert.Equal(6, count);
    }

    [Fact]
    public void VocabularySizesAndSpecialIds()
    {
        Assert.Equal((1024, 1028), (TokenizerFixtures.Tiny.BaseVocabSize, TokenizerFixtures.Tiny.VocabSize));
        Assert.Equal((32000, 32004), (TokenizerFixtures.Llama2.BaseVocabSize, TokenizerFixtures.Llama2.VocabSize));
        foreach (LlamaTextTokenizer tokenizer in new[] { TokenizerFixtures.Tiny, TokenizerFixtures.Llama2 })
        {
            Assert.Equal((0, 1, 2), (tokenizer.UnkId, tokenizer.BosId, tokenizer.EosId));
            Assert.Equal(["<unk>", "<s>", "</s>", "<0x00>"], Enumerable.Range(0, 4).Select(tokenizer.IdToPiece));
        }
    }

    [Theory]
    [InlineData(1024)]
    [InlineData(32000)]
    public void LLarkAddedTokensFollowTheBaseVocabularyInOrder(int baseSize)
    {
        LlamaTextTokenizer tokenizer = baseSize == 1024 ? TokenizerFixtures.Tiny : TokenizerFixtures.Llama2;
        string[] tokens = ["[PAD]", "<audio_patch>", "<audio_start>", "<audio_end>"];
        for (int i = 0; i < tokens.Length; i++)
        {
            Assert.True(tokenizer.TryGetAddedTokenId(tokens[i], out int id));
            Assert.Equal(baseSize + i, id);
            Assert.Equal(tokens[i], tokenizer.IdToPiece(id));
            Assert.Equal([id], tokenizer.Encode(tokens[i], addBos: false));
        }
        Assert.False(tokenizer.TryGetAddedTokenId("<audio>", out _));
        Assert.Equal([baseSize + 2, baseSize + 1, baseSize + 1, baseSize + 3],
            tokenizer.Encode("<audio_start><audio_patch><audio_patch><audio_end>", addBos: false));
    }

    [Fact]
    public void PlainAudioPlaceholderAndControlPieceTextStayPlainText()
    {
        LlamaTextTokenizer tokenizer = TokenizerFixtures.Llama2;
        int[] ids = tokenizer.Encode("<audio> <s></s><unk>[PAD", addBos: false);
        Assert.All(ids, id => Assert.InRange(id, 3, tokenizer.BaseVocabSize - 1));
        Assert.Equal("<audio> <s></s><unk>[PAD", tokenizer.Decode(ids));
    }

    /// <summary>
    /// transformers 4.29.2's slow tokenizer, as LLark trained: whitespace next to added tokens is dropped and
    /// each piece of text between them is encoded on its own, with its own dummy prefix.
    /// </summary>
    [Fact]
    public void TextAroundAddedTokensIsStrippedAndEncodedPieceByPiece()
    {
        LlamaTextTokenizer tokenizer = TokenizerFixtures.Llama2;
        const string prompt = "### Human: <audio_start><audio_patch><audio_patch><audio_end>\nWhat is the key?\n### Assistant:";
        int[] expected =
        [
            1,
            .. tokenizer.Encode("### Human:", addBos: false),
            32002, 32001, 32001, 32003,
            .. tokenizer.Encode("What is the key?\n### Assistant:", addBos: false),
        ];
        Assert.Equal(expected, tokenizer.Encode(prompt, addBos: true));
        Assert.Equal(29871, tokenizer.Encode("\nWhat", addBos: false)[0]);
        Assert.Equal(tokenizer.Encode("What", addBos: false), tokenizer.Encode("<audio_end>\n \t What", addBos: false)[1..]);
        Assert.Equal(tokenizer.Encode("a", addBos: false), tokenizer.Encode("a \u3000<audio_end>", addBos: false)[..^1]);
        Assert.Equal([32000, 32000], tokenizer.Encode(" [PAD]  [PAD] ", addBos: false));
    }

    [Fact]
    public void WhitespaceAroundAddedTokensCanBeKept()
    {
        var tokenizer = LlamaTextTokenizer.Load(TokenizerFixtures.Llama2ModelPath, stripWhitespaceAroundAddedTokens: false);
        int[] expected =
        [
            .. tokenizer.Encode("### Human: ", addBos: false),
            32002, 32001, 32003,
            .. tokenizer.Encode("\nWhat", addBos: false),
        ];
        Assert.Equal(expected, tokenizer.Encode("### Human: <audio_start><audio_patch><audio_end>\nWhat", addBos: false));
    }

    [Fact]
    public void AddedTokensComeFromAddedTokensJsonBesideTheModel()
    {
        string directory = Directory.CreateTempSubdirectory("llark-tokenizer-").FullName;
        try
        {
            string modelPath = Path.Combine(directory, "tokenizer.model");
            File.Copy(TokenizerFixtures.TinyModelPath, modelPath);
            string json = Path.Combine(directory, LlamaTextTokenizer.AddedTokensFileName);
            File.WriteAllText(json, """{"<audio_end>": 1025, "<pad>": 1024}""");
            var tokenizer = LlamaTextTokenizer.Load(modelPath);
            Assert.Equal(["<pad>", "<audio_end>"], tokenizer.AddedTokens);
            Assert.Equal(1026, tokenizer.VocabSize);
            Assert.Equal([1025], tokenizer.Encode("<audio_end>", addBos: false));

            Assert.Equal(LlamaTextTokenizer.LLarkAddedTokens, LlamaTextTokenizer.Load(modelPath, LlamaTextTokenizer.LLarkAddedTokens).AddedTokens);

            File.WriteAllText(json, """{"<audio_end>": 1026, "<pad>": 1024}""");
            Assert.Throws<InvalidDataException>(() => LlamaTextTokenizer.Load(modelPath));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void AddedTokensMustBeNewAndDistinct()
    {
        SentencePieceModel model = SentencePieceModel.Load(TokenizerFixtures.TinyModelPath);
        Assert.Throws<ArgumentException>(() => new LlamaTextTokenizer(model, ["<x>", "<x>"]));
        Assert.Throws<ArgumentException>(() => new LlamaTextTokenizer(model, ["<s>"]));
        Assert.Throws<ArgumentException>(() => new LlamaTextTokenizer(model, [""]));
        Assert.Equal(1024, new LlamaTextTokenizer(model, []).VocabSize);
    }

    [Fact]
    public void UnknownIdsAndControlPiecesDecodeAsSentencePieceDoes()
    {
        LlamaTextTokenizer tokenizer = TokenizerFixtures.Llama2;
        Assert.Equal(" \u2047 ", tokenizer.Decode([1, 0, 2]));
        // After <unk> the text is no longer at its start, so the next piece keeps its space.
        Assert.Equal(" \u2047  hello", tokenizer.Decode([0, 22172]));
        Assert.Equal("hello", tokenizer.Decode([1, 2, 22172]));
        // A piece that is only U+2581 consumes the leading space; the next one keeps its own.
        Assert.Equal(" hello", tokenizer.Decode([29871, 22172]));
        Assert.Equal("", tokenizer.Decode([]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([32004]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([-1]));
    }

    [Fact]
    public void InvalidUtf8FromBytePiecesGivesOneReplacementCharacterPerByte()
    {
        LlamaTextTokenizer tokenizer = TokenizerFixtures.Tiny;
        static int B(int value) => 3 + value;
        // A 4-byte lead cut short, then a letter: each of the two bytes is invalid on its own.
        Assert.Equal("\uFFFD\uFFFDa", tokenizer.Decode([B(0xF0), B(0x9F), B('a')]));
        // Overlong, surrogate and stray continuation bytes are invalid too; an ASCII byte is kept.
        Assert.Equal("\uFFFD\uFFFD", tokenizer.Decode([B(0xC0), B(0x80)]));
        Assert.Equal("\uFFFD\uFFFD\uFFFD", tokenizer.Decode([B(0xED), B(0xA0), B(0x80)]));
        Assert.Equal("\uFFFD\uFFFDA", tokenizer.Decode([B(0xBF), B(0xE2), B(0x41)]));
        // A valid character after an invalid byte is still found.
        Assert.Equal("\uFFFD\u00E9", tokenizer.Decode([B(0xE9), B(0xC3), B(0xA9)]));
    }

    private static void AssertMatchesRecording(LlamaTextTokenizer tokenizer, EncodingCase c)
    {
        Assert.Equal(c.Ids, tokenizer.Encode(c.Text, addBos: false));
        Assert.Equal(c.IdsWithBos, tokenizer.Encode(c.Text, addBos: true));
        Assert.Equal(c.Decoded, tokenizer.Decode(c.Ids));
        Assert.Equal(c.Decoded, tokenizer.Decode(c.IdsWithBos));
    }
}
