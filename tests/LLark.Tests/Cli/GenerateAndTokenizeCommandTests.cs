using System.Text.Json;
using LLark.Tests.Language.Engine.Model;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Cli;

/// <summary><c>llark generate</c> and <c>llark tokenize</c> as processes, against the recorded references.</summary>
public sealed class GenerateAndTokenizeCommandTests
{
    private static readonly string Mha = RepoPaths.Fixture("llama-tiny", "llama-mha-fp16");

    [Fact]
    public void GenerateWithIdsReproducesTheGreedyReferenceAsJson()
    {
        var golden = new LlamaReference("mha");
        JsonElement prompt = golden.Prompt("raw_ids_edges");
        int[] ids = LlamaReference.Ints(prompt.GetProperty("ids"));
        int[] expected = LlamaReference.Ints(prompt.GetProperty("greedy_32"))[..12];
        var output = LlarkProcess.Run("generate", "--model", Mha, "--ids", string.Join(',', ids), "--max-new-tokens", "12",
            "--ignore-eos", "--json");
        Assert.True(output.ExitCode == 0, output.Stderr);
        JsonElement result = JsonDocument.Parse(output.Stdout).RootElement;
        Assert.Equal(expected, LlamaReference.Ints(result.GetProperty("token_ids")));
        Assert.Equal("length", result.GetProperty("finish_reason").GetString());
        Assert.Equal(ids.Length, result.GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public void GenerateWithAPromptStreamsTheTextOfTheGreedyContinuation()
    {
        var golden = new LlamaReference("mha");
        JsonElement prompt = golden.Prompt("short");
        string text = prompt.GetProperty("text").GetString()!;
        var streamed = LlarkProcess.Run("generate", "--model", Mha, "--prompt", text, "--max-new-tokens", "32");
        var json = LlarkProcess.Run("generate", "--model", Mha, "--prompt", text, "--max-new-tokens", "32", "--json");
        Assert.True(streamed.ExitCode == 0, streamed.Stderr);
        string answer = JsonDocument.Parse(json.Stdout).RootElement.GetProperty("text").GetString()!;
        Assert.Equal(answer + "\n", streamed.Stdout);
        Assert.Equal(prompt.GetProperty("decoded_prompt_plus_greedy_32").GetString(), text + answer);
        Assert.Equal(LlamaReference.Ints(prompt.GetProperty("greedy_32")),
            LlamaReference.Ints(JsonDocument.Parse(json.Stdout).RootElement.GetProperty("token_ids")));
    }

    [Fact]
    public void TokenizeGivesSentencePiecesIdsWithLLarksAddedTokens()
    {
        string model = RepoPaths.Fixture("llama2-tokenizer-model", "tokenizer.model");
        var output = LlarkProcess.Run("tokenize", "--tokenizer", model, "--bos", "--json", "### Human: <audio_start>What key?");
        Assert.True(output.ExitCode == 0, output.Stderr);
        // "### Human:" and "What key?" are encoded apart, as transformers' slow tokenizer does around added tokens.
        Assert.Equal("{\"ids\":[1,835,12968,29901,32002,1724,1820,29973]}", output.Stdout.Trim());
    }

    [Theory]
    [InlineData(2, "--prompt", "x", "--top-p", "0")]
    [InlineData(2, "--prompt", "x", "--ids", "1")]
    [InlineData(2, "--ids", "1,x")]
    [InlineData(3, "--model-missing")]
    public void BadRequestsExitWithACodeAndOneLine(int code, params string[] args)
    {
        string[] full = args[0] == "--model-missing"
            ? ["generate", "--model", "/nonexistent/model", "--prompt", "x"]
            : ["generate", "--model", Mha, .. args];
        var output = LlarkProcess.Run(full);
        Assert.Equal(code, output.ExitCode);
        Assert.StartsWith("error: ", output.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output.Stderr, StringComparison.Ordinal);
    }
}
