using System.CommandLine;
using LLark.Cli.Commands;
using LLark.Language.Engine.Model;

namespace LLark.Bench.Commands;

/// <summary>
/// <c>llark-bench random-model</c>: writes a LLark checkpoint folder of a known shape with random weights, so that loading
/// it (peak memory, packing at load) is measured in a process that did not make it.
/// </summary>
internal static class RandomModelCommand
{
    public static Command Create()
    {
        var shape = new Option<string>("--shape") { Description = $"Llama shape: {string.Join(", ", BenchCommand.Shapes.Keys)}", DefaultValueFactory = _ => "stories110m" };
        var output = new Option<string>("--out") { Description = "folder to write", Required = true };
        var tokenizer = new Option<string>("--tokenizer") { Description = "Llama-2 tokenizer.model", DefaultValueFactory = _ => "tests/fixtures/llama2-tokenizer-model/tokenizer.model" };
        var command = new Command("random-model", "Write a LLark checkpoint folder of a known shape with random weights") { shape, output, tokenizer };
        command.SetAction(parse => CliErrors.Run(() =>
        {
            string name = parse.GetValue(shape)!;
            if (!BenchCommand.Shapes.TryGetValue(name.ToLowerInvariant(), out LlamaConfig? config)) throw new UsageException($"unknown shape '{name}'");
            string tok = parse.GetValue(tokenizer)!;
            if (!File.Exists(tok)) throw new FileNotFoundException($"tokenizer not found: {tok} (run from the repository root or pass --tokenizer)");
            BenchServeCommand.WriteRandomLLark(parse.GetValue(output)!, config with { VocabSize = 32004 }, tok);
            return ExitCodes.Ok;
        }));
        return command;
    }
}
