using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Tokenization;

namespace LLark.Cli.Commands;

/// <summary><c>llark generate</c>: continue a prompt with a Llama model, streaming the text as it comes.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face Llama folder (config.json, weights, tokenizer.model)", Required = true };
        var prompt = new Option<string?>("--prompt") { Description = "text to continue; encoded with BOS first" };
        var ids = new Option<string?>("--ids") { Description = "comma-separated token ids, used as given (no BOS added)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "tokenizer.model (default: the one in --model)" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "most tokens to generate", DefaultValueFactory = _ => 128 };
        var temperature = new Option<float>("--temperature") { Description = "0 = greedy (default)", DefaultValueFactory = _ => 0f };
        var topP = new Option<float>("--top-p") { Description = "nucleus sampling mass, 1 = off", DefaultValueFactory = _ => 1f };
        var topK = new Option<int>("--top-k") { Description = "keep the K most likely tokens, 0 = off", DefaultValueFactory = _ => 0 };
        var penalty = new Option<float>("--repetition-penalty") { Description = "1 = off", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong?>("--seed") { Description = "random seed; the same seed gives the same output" };
        var stop = new Option<string[]>("--stop") { Description = "stop when the text contains this (repeatable)", AllowMultipleArgumentsPerToken = false };
        var noEos = new Option<bool>("--ignore-eos") { Description = "keep going past end-of-sequence" };
        var logProbs = new Option<bool>("--logprobs") { Description = "report each token's log-probability (with --json)" };
        var dtype = new Option<string>("--dtype") { Description = "fp32, fp16 or bf16", DefaultValueFactory = _ => "fp32" };
        var json = new Option<bool>("--json") { Description = "print one JSON object at the end instead of streaming text" };

        var command = new Command("generate", "Generate text with a Llama model")
        {
            model, prompt, ids, tokenizer, maxNew, temperature, topP, topK, penalty, seed, stop, noEos, logProbs, dtype, json,
        };
        command.SetAction((parse, ct) => CliErrors.Run(() => Run(new Request(
            parse.GetValue(model)!, parse.GetValue(prompt), parse.GetValue(ids), parse.GetValue(tokenizer), parse.GetValue(dtype)!,
            new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxNew),
                StopStrings = parse.GetValue(stop) ?? [],
                StopOnEos = !parse.GetValue(noEos),
                LogProbs = parse.GetValue(logProbs),
                Sampling = new SamplingOptions
                {
                    Temperature = parse.GetValue(temperature),
                    TopP = parse.GetValue(topP),
                    TopK = parse.GetValue(topK),
                    RepetitionPenalty = parse.GetValue(penalty),
                    Seed = parse.GetValue(seed),
                },
            },
            parse.GetValue(json)), ct)));
        return command;
    }

    private sealed record Request(string Model, string? Prompt, string? Ids, string? Tokenizer, string DType,
        GenerationOptions Options, bool Json);

    private static int Run(Request request, CancellationToken ct)
    {
        if ((request.Prompt is null) == (request.Ids is null)) throw new UsageException("give exactly one of --prompt and --ids");
        request.Options.Validate();
        string tokenizerPath = request.Tokenizer ?? Path.Combine(request.Model, "tokenizer.model");
        using LlamaForCausalLM llama = LlamaLoader.Load(request.Model, new LlamaLoadOptions { DType = LlamaLoader.ParseDType(request.DType) }, ct);
        LlamaTextTokenizer? tokens = File.Exists(tokenizerPath) ? LlamaTextTokenizer.LoadForModel(tokenizerPath, llama.Config.VocabSize)
            : request.Prompt is not null || request.Tokenizer is not null ? throw new FileNotFoundException($"tokenizer not found: {tokenizerPath}")
            : null;
        int[] promptIds = request.Prompt is not null ? tokens!.Encode(request.Prompt, addBos: true) : ParseIds(request.Ids!);

        ITokenTextDecoder text = tokens is not null ? tokens.CreateDetokenizer(atStartOfText: false) : NullTextDecoder.Instance;
        GenerationResult? result = null;
        using var stdout = Console.OpenStandardOutput();
        foreach (GenerationUpdate update in new TextGenerator(llama).Generate(promptIds, text, request.Options, ct))
        {
            if (!request.Json && update.TextDelta.Length > 0)
            {
                stdout.Write(System.Text.Encoding.UTF8.GetBytes(update.TextDelta));
                stdout.Flush();
            }
            result = update.Result ?? result;
        }
        if (request.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                token_ids = result!.TokenIds,
                text = result.Text,
                finish_reason = result.FinishReason.ToString().ToLowerInvariant(),
                prompt_tokens = result.PromptTokens,
                logprobs = result.LogProbs,
                time_to_first_token_ms = result.TimeToFirstToken.TotalMilliseconds,
                decode_ms = result.DecodeTime.TotalMilliseconds,
            }));
        }
        else Console.WriteLine();
        return result!.FinishReason == FinishReason.Cancelled ? ExitCodes.Cancelled : ExitCodes.Ok;
    }

    internal static int[] ParseIds(string text)
    {
        string[] parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new UsageException("--ids holds no ids");
        return [.. parts.Select(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int id) ? id
            : throw new UsageException($"--ids: '{p}' is not a token id"))];
    }
}
