using System.CommandLine;
using System.Text.Json;
using LLark.Language.Engine.Tokenization;

namespace LLark.Cli.Commands;

/// <summary><c>llark tokenize</c>: the ids SentencePiece gives a text, LLark's added tokens included.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "SentencePiece tokenizer.model", Required = true };
        var bos = new Option<bool>("--bos") { Description = "put BOS (id 1) first" };
        var json = new Option<bool>("--json") { Description = "print {\"ids\":[...]}" };
        var plain = new Option<bool>("--no-added-tokens") { Description = "the base pieces only, without LLark's added tokens" };
        var text = new Argument<string>("text") { Description = "text to encode" };
        var command = new Command("tokenize", "Tokenize text") { tokenizer, bos, json, plain, text };
        command.SetAction(parse => CliErrors.Run(() =>
        {
            string path = parse.GetValue(tokenizer)!;
            if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer not found: {path}");
            LlamaTextTokenizer t = parse.GetValue(plain) ? LlamaTextTokenizer.Load(path, addedTokens: []) : LlamaTextTokenizer.Load(path);
            int[] ids = t.Encode(parse.GetValue(text)!, parse.GetValue(bos));
            if (parse.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(new { ids }));
            else
            {
                foreach (int id in ids) Console.WriteLine($"{id}\t{t.IdToPiece(id)}");
            }
            return ExitCodes.Ok;
        }));
        return command;
    }
}
