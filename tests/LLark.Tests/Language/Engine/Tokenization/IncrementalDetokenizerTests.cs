using System.Text;
using System.Text.Json;
using LLark.Language.Engine.Tokenization;

namespace LLark.Tests.Language.Engine.Tokenization;

public sealed class IncrementalDetokenizerTests
{
    private static readonly UTF8Encoding strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    [Fact]
    public void DeltasJoinToTheRecordedDecodeOfEveryEncodingCase()
    {
        foreach (var (tokenizer, cases) in new[]
        {
            (TokenizerFixtures.Tiny, TokenizerFixtures.TinyCases),
            (TokenizerFixtures.Llama2, TokenizerFixtures.Llama2Cases),
        })
        {
            foreach (EncodingCase c in cases)
            {
                Assert.Equal(c.Decoded, Stream(tokenizer, c.Ids));
                Assert.Equal(c.Decoded, Stream(tokenizer, c.IdsWithBos));
            }
        }
    }

    /// <summary>
    /// Prompt plus 32 greedy ids of the random models, decoded by SentencePiece: byte tokens that form no
    /// character, &lt;unk&gt;, BOS and EOS inside the text.
    /// </summary>
    [Theory]
    [InlineData("mha")]
    [InlineData("gqa")]
    public void DeltasJoinToTheRecordedDecodeOfTheGreedyContinuations(string model)
    {
        JsonElement reference = TokenizerFixtures.ReadJson($"llama-tiny/reference/{model}.json");
        int count = 0;
        foreach (JsonElement prompt in reference.GetProperty("prompts").EnumerateArray())
        {
            int[] ids = [.. TokenizerFixtures.Ints(prompt.GetProperty("ids")), .. TokenizerFixtures.Ints(prompt.GetProperty("greedy_32"))];
            string expected = prompt.GetProperty("decoded_prompt_plus_greedy_32").GetString()!;
            Assert.Equal(expected, TokenizerFixtures.Tiny.Decode(ids));
            Assert.Equal(expected, Stream(TokenizerFixtures.Tiny, ids));
            count++;
        }
        Assert.Equal(7, count);

        JsonElement longRun = reference.GetProperty("long_greedy");
        int[] longIds = [.. TokenizerFixtures.Ints(longRun.GetProperty("prompt_ids")), .. TokenizerFixtures.Ints(longRun.GetProperty("tokens"))];
        Assert.Equal(longRun.GetProperty("decoded").GetString(), Stream(TokenizerFixtures.Tiny, longIds));
    }

    [Fact]
    public void AReplyAfterAPromptStreamsWhatDecodingPromptAndReplyAdds()
    {
        JsonElement reference = TokenizerFixtures.ReadJson("llama-tiny/reference/mha.json");
        foreach (JsonElement prompt in reference.GetProperty("prompts").EnumerateArray())
        {
            int[] promptIds = TokenizerFixtures.Ints(prompt.GetProperty("ids"));
            string promptText = TokenizerFixtures.Tiny.Decode(promptIds);
            if (promptText.Length == 0) continue;
            string reply = Stream(TokenizerFixtures.Tiny, TokenizerFixtures.Ints(prompt.GetProperty("greedy_32")), atStartOfText: false);
            Assert.Equal(prompt.GetProperty("decoded_prompt_plus_greedy_32").GetString(), promptText + reply);
        }
    }

    [Fact]
    public void AnEmojiSplitOverByteTokensComesOutWholeOnceComplete()
    {
        LlamaTextTokenizer tokenizer = TokenizerFixtures.Llama2;
        int[] ids = tokenizer.Encode("I love 🦙!", addBos: true);
        Assert.Equal([1, 306, 5360, 29871, 243, 162, 169, 156, 29991], ids);
        var detokenizer = tokenizer.CreateDetokenizer();
        string[] deltas = [.. ids.Select(detokenizer.Push), detokenizer.Flush()];
        Assert.Equal(["", "I", " love", " ", "", "", "", "🦙", "!", ""], deltas);
    }

    [Fact]
    public void TheFirstPieceOfAGenerationHasNoLeadingSpace()
    {
        LlamaTextTokenizer tokenizer = TokenizerFixtures.Llama2;
        int[] bosHelloWorld = [1, 15043, 3186];
        var atStart = tokenizer.CreateDetokenizer();
        Assert.Equal(["", "Hello", " world"], bosHelloWorld.Select(atStart.Push));
        var continuing = tokenizer.CreateDetokenizer(atStartOfText: false);
        Assert.Equal([" Hello", " world"], bosHelloWorld[1..].Select(continuing.Push));
    }

    [Fact]
    public void IncompleteBytesWaitAndBecomeReplacementCharactersWhenTheyCannotComplete()
    {
        var detokenizer = TokenizerFixtures.Tiny.CreateDetokenizer();
        static int B(int value) => 3 + value;
        Assert.Equal("", detokenizer.Push(B(0xF0)));
        Assert.Equal("", detokenizer.Push(B(0x9F)));
        Assert.Equal("\uFFFD\uFFFDA", detokenizer.Push(B(0x41)));
        Assert.Equal("", detokenizer.Push(B(0xE2)));
        Assert.Equal("\uFFFD", detokenizer.Flush());
        Assert.Equal("", detokenizer.Flush());
    }

    /// <summary>Every byte split of many multi-byte characters, checked for whole characters and for equality with Decode.</summary>
    [Fact]
    public void NoDeltaHoldsHalfACharacter()
    {
        LlamaTextTokenizer tokenizer = TokenizerFixtures.Tiny;
        string text = "é€𝄞🦙👨‍👩‍👧 日本語 ÿ\u0800\uFFFD\U0010FFFF";
        int[] ids = [1, .. Encoding.UTF8.GetBytes(text).Select(b => 3 + b)];
        var pieces = Deltas(tokenizer, ids);
        Assert.Equal(text, string.Concat(pieces));
        Assert.Equal(tokenizer.Decode(ids), string.Concat(pieces));
        foreach (string delta in pieces) strictUtf8.GetByteCount(delta);

        foreach (EncodingCase c in TokenizerFixtures.Llama2Cases)
        {
            foreach (string delta in Deltas(TokenizerFixtures.Llama2, c.Ids)) strictUtf8.GetByteCount(delta);
        }
    }

    private static string Stream(LlamaTextTokenizer tokenizer, IEnumerable<int> ids, bool atStartOfText = true) =>
        string.Concat(Deltas(tokenizer, ids, atStartOfText));

    private static List<string> Deltas(LlamaTextTokenizer tokenizer, IEnumerable<int> ids, bool atStartOfText = true)
    {
        var detokenizer = tokenizer.CreateDetokenizer(atStartOfText);
        List<string> deltas = [.. ids.Select(detokenizer.Push), detokenizer.Flush()];
        foreach (string delta in deltas) strictUtf8.GetByteCount(delta);
        return deltas;
    }
}
