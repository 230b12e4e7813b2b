using LLark.Common;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Tokenization;
using LLark.Tests.Checkpoints;
using LLark.Tests.Language.Engine.Model;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Language.Engine.Generation;

/// <summary>Generation settings, stopping and cancellation on the tiny mha model and its tokenizer.</summary>
public sealed class TextGeneratorTests : IDisposable
{
    private readonly LlamaForCausalLM model = LlamaFidelityTests.Load("llama-tiny/llama-mha-fp16");
    private readonly LlamaTextTokenizer tokenizer =
        LlamaTextTokenizer.Load(RepoPaths.Fixture("llama-tiny", "tokenizer", "tokenizer.model"), addedTokens: []);
    private readonly LlamaReference golden = new("mha");

    public void Dispose() => model.Dispose();

    private int[] StoryIds => LlamaReference.Ints(golden.Prompt("story").GetProperty("ids"));

    private List<GenerationUpdate> Run(GenerationOptions options, int[]? prompt = null, CancellationToken ct = default) =>
        [.. new TextGenerator(model).Generate(prompt ?? StoryIds, tokenizer.CreateDetokenizer(atStartOfText: false), options, ct)];

    private static GenerationOptions Sampled(ulong seed, int tokens = 24) => new()
    {
        MaxNewTokens = tokens,
        Sampling = new SamplingOptions { Temperature = 1.0f, Seed = seed },
    };

    [Fact]
    public void TheSameSeedGivesTheSameTokensAndAnotherSeedOthers()
    {
        GenerationResult a = Run(Sampled(7)).Last().Result!;
        GenerationResult b = Run(Sampled(7)).Last().Result!;
        GenerationResult c = Run(Sampled(8)).Last().Result!;
        Assert.Equal(a.TokenIds, b.TokenIds);
        Assert.Equal(a.Text, b.Text);
        Assert.NotEqual(a.TokenIds, c.TokenIds);
        int[] greedy = LlamaReference.Ints(golden.Prompt("story").GetProperty("greedy_32"))[..24];
        Assert.NotEqual(greedy, a.TokenIds);
    }

    [Fact]
    public void TopKOfOneAndATinyTopPAreGreedy()
    {
        int[] greedy = LlamaReference.Ints(golden.Prompt("story").GetProperty("greedy_32"));
        var topK = new GenerationOptions { MaxNewTokens = 32, Sampling = new SamplingOptions { Temperature = 1.5f, TopK = 1, Seed = 3 } };
        var topP = new GenerationOptions { MaxNewTokens = 32, Sampling = new SamplingOptions { Temperature = 1.5f, TopP = 1e-6f, Seed = 3 } };
        Assert.Equal(greedy, Run(topK).Last().Result!.TokenIds);
        Assert.Equal(greedy, Run(topP).Last().Result!.TokenIds);
    }

    [Fact]
    public void StreamedDeltasJoinToTheFinalTextAndToTheDecodedIds()
    {
        List<GenerationUpdate> updates = Run(new GenerationOptions { MaxNewTokens = 32 });
        GenerationResult result = updates[^1].Result!;
        Assert.Equal(32, updates.Count(u => u.TokenId is not null));
        Assert.Equal(result.Text, string.Concat(updates.Select(u => u.TextDelta)));
        string whole = tokenizer.Decode([.. StoryIds, .. result.TokenIds]);
        Assert.EndsWith(result.Text, whole, StringComparison.Ordinal);
        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Equal(StoryIds.Length, result.PromptTokens);
    }

    [Fact]
    public void AStopStringEndsGenerationAndNeverReachesTheStream()
    {
        string full = Run(new GenerationOptions { MaxNewTokens = 32 }).Last().Result!.Text;
        // A stop string that spans tokens: four characters from the middle of the greedy text.
        int at = full.Length / 2;
        string stop = full.Substring(at, 4);
        at = full.IndexOf(stop, StringComparison.Ordinal);
        List<GenerationUpdate> updates = Run(new GenerationOptions { MaxNewTokens = 32, StopStrings = [stop] });
        GenerationResult result = updates[^1].Result!;
        Assert.Equal(FinishReason.Stop, result.FinishReason);
        Assert.Equal(full[..at], result.Text);
        Assert.Equal(result.Text, string.Concat(updates.Select(u => u.TextDelta)));
        Assert.DoesNotContain(stop, result.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void EndOfSequenceEndsGenerationWithoutText()
    {
        int[] greedy = LlamaReference.Ints(golden.Prompt("story").GetProperty("greedy_32"));
        using var dir = new TempDirectory();
        string source = RepoPaths.Fixture("llama-tiny", "llama-mha-fp16");
        File.Copy(Path.Combine(source, "model.safetensors"), Path.Combine(dir.Path, "model.safetensors"));
        // Declare the 6th greedy token an end-of-sequence id (as a list, as some configs give it).
        string config = File.ReadAllText(Path.Combine(source, "config.json"))
            .Replace("\"eos_token_id\": 2", $"\"eos_token_id\": [2, {greedy[5]}]", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(dir.Path, "config.json"), config);
        using LlamaForCausalLM eosModel = LlamaLoader.Load(dir.Path);
        Assert.Equal([2, greedy[5]], eosModel.Config.EosTokenIds);
        int stopAt = Array.IndexOf(greedy, greedy[5]);

        GenerationResult result = new TextGenerator(eosModel)
            .Generate(StoryIds, tokenizer.CreateDetokenizer(false), new GenerationOptions { MaxNewTokens = 32 }).Last().Result!;
        Assert.Equal(FinishReason.Eos, result.FinishReason);
        Assert.Equal(greedy[..(stopAt + 1)], result.TokenIds);
        Assert.Equal(tokenizer.Decode([.. StoryIds, .. greedy[..stopAt]]), tokenizer.Decode(StoryIds) + result.Text);

        GenerationResult ignoring = new TextGenerator(eosModel)
            .Generate(StoryIds, tokenizer.CreateDetokenizer(false), new GenerationOptions { MaxNewTokens = 32, StopOnEos = false }).Last().Result!;
        Assert.Equal(greedy, ignoring.TokenIds);
    }

    [Fact]
    public void CancellationStopsWithinOneDecodeStep()
    {
        using var cts = new CancellationTokenSource();
        var updates = new List<GenerationUpdate>();
        foreach (GenerationUpdate update in new TextGenerator(model).Generate(StoryIds, tokenizer.CreateDetokenizer(false),
                     new GenerationOptions { MaxNewTokens = 200 }, cts.Token))
        {
            updates.Add(update);
            if (updates.Count == 3) cts.Cancel();
        }
        GenerationResult result = updates[^1].Result!;
        Assert.Equal(FinishReason.Cancelled, result.FinishReason);
        Assert.Equal(4, result.TokenIds.Count);

        using var before = new CancellationTokenSource();
        before.Cancel();
        GenerationResult none = Run(new GenerationOptions(), ct: before.Token).Last().Result!;
        Assert.Equal(FinishReason.Cancelled, none.FinishReason);
        Assert.Empty(none.TokenIds);
    }

    [Fact]
    public void LogProbsAreTheLogSoftmaxOfTheModelsLogits()
    {
        System.Text.Json.JsonElement prompt = golden.Prompt("story");
        (float[] logits, long[] shape) = LlamaReference.Array("mha_logits_last.npy");
        int vocab = (int)shape[1];
        ReadOnlySpan<float> row = logits.AsSpan(prompt.GetProperty("logits_last_row").GetInt32() * vocab, vocab);
        double max = double.NegativeInfinity, sum = 0;
        foreach (float x in row) max = Math.Max(max, x);
        foreach (float x in row) sum += Math.Exp(x - max);
        int first = LlamaReference.Ints(prompt.GetProperty("greedy_32"))[0];
        double expected = row[first] - max - Math.Log(sum);

        List<GenerationUpdate> updates = Run(new GenerationOptions { MaxNewTokens = 8, LogProbs = true });
        GenerationResult result = updates[^1].Result!;
        Assert.Equal(8, result.LogProbs!.Count);
        Assert.Equal(expected, result.LogProbs[0], 1e-3);
        Assert.All(result.LogProbs, lp => Assert.InRange(lp, -50f, 0f));
        Assert.Equal(result.LogProbs, updates.Where(u => u.TokenId is not null).Select(u => u.LogProb!.Value));
        Assert.Null(Run(new GenerationOptions { MaxNewTokens = 2 })[^1].Result!.LogProbs);
    }

    [Fact]
    public void RepetitionPenaltyFollowsTheHuggingFaceRule()
    {
        var sampler = new TokenSampler(new SamplingOptions { RepetitionPenalty = 2f });
        float[] logits = [4f, 3f, -1f, 2.5f];
        // Seen positive logits are divided: 4 -> 2 and 3 -> 1.5, so the unseen 2.5 wins.
        Assert.Equal(1, sampler.Next(logits, new HashSet<int> { 0 }));
        Assert.Equal(3, sampler.Next(logits, new HashSet<int> { 0, 1 }));
        // Seen negative logits are multiplied: -1 -> -2 falls below -1.5.
        Assert.Equal(1, sampler.Next([-1f, -1.5f], new HashSet<int> { 0 }));
        Assert.Equal(0, new TokenSampler(new SamplingOptions()).Next(logits, new HashSet<int> { 0 }));
        var penalised = Run(new GenerationOptions { MaxNewTokens = 32, Sampling = new SamplingOptions { RepetitionPenalty = 1.3f } });
        int[] greedy = LlamaReference.Ints(golden.Prompt("story").GetProperty("greedy_32"));
        Assert.NotEqual(greedy, penalised[^1].Result!.TokenIds);
    }

    [Fact]
    public void SamplingFollowsTheDistribution()
    {
        // Two tokens with probabilities 0.75 / 0.25 at temperature 1: 4000 draws land near 3000.
        float[] logits = [MathF.Log(3f), 0f, float.NegativeInfinity];
        var sampler = new TokenSampler(new SamplingOptions { Temperature = 1f, Seed = 11 });
        int zeros = Enumerable.Range(0, 4000).Count(_ => sampler.Next(logits, null) == 0);
        Assert.InRange(zeros, 2850, 3150);
        var halved = new TokenSampler(new SamplingOptions { Temperature = 0.5f, Seed = 11 });
        // Temperature 0.5 squares the odds: 9 / 10.
        Assert.InRange(Enumerable.Range(0, 4000).Count(_ => halved.Next(logits, null) == 0), 3480, 3720);
    }

    [Theory]
    [InlineData("temperature")]
    [InlineData("top_k")]
    [InlineData("top_p")]
    [InlineData("repetition_penalty")]
    [InlineData("max_new_tokens")]
    [InlineData("stop")]
    public void BadSettingsAreRefusedNamingTheField(string field)
    {
        GenerationOptions options = field switch
        {
            "temperature" => new() { Sampling = new() { Temperature = -1 } },
            "top_k" => new() { Sampling = new() { TopK = -2 } },
            "top_p" => new() { Sampling = new() { TopP = 0 } },
            "repetition_penalty" => new() { Sampling = new() { RepetitionPenalty = float.NaN } },
            "max_new_tokens" => new() { MaxNewTokens = 0 },
            _ => new() { StopStrings = [""] },
        };
        var e = Assert.Throws<InvalidRequestException>(() => Run(options));
        Assert.Equal(field, e.Field);
    }

    [Fact]
    public void EmptyTooLongAndOutOfVocabularyPromptsAreRefused()
    {
        Assert.Equal("prompt", Assert.Throws<InvalidRequestException>(() => Run(new GenerationOptions(), [])).Field);
        int[] tooLong = Enumerable.Repeat(5, model.Config.MaxPositionEmbeddings).ToArray();
        var e = Assert.Throws<ContextLengthException>(() => Run(new GenerationOptions(), tooLong));
        Assert.Equal(model.Config.MaxPositionEmbeddings, e.Capacity);
        Assert.Contains("exceeds the context", e.Message, StringComparison.Ordinal);
        var outside = Assert.Throws<InvalidRequestException>(() => Run(new GenerationOptions(), [1, 5000]));
        Assert.Contains("5000", outside.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void GenerationThatFillsTheContextEndsWithLength()
    {
        int context = model.Config.MaxPositionEmbeddings;
        int[] prompt = Enumerable.Repeat(5, context - 3).ToArray();
        GenerationResult result = Run(new GenerationOptions { MaxNewTokens = 50 }, prompt).Last().Result!;
        Assert.Equal(FinishReason.Length, result.FinishReason);
        // The last of the context's positions yields one more token that is never fed back.
        Assert.Equal(4, result.TokenIds.Count);
    }
}
