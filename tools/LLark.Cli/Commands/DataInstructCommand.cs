using System.CommandLine;
using LLark.Data;
using LLark.Data.Instruct;

namespace LLark.Cli.Commands;

/// <summary>
/// <c>llark data instruct --manifest M --out pairs.jsonl</c>: instruction pairs in LLark's three families, from
/// templates, or from an OpenAI-compatible chat endpoint with <c>--llm-url</c>.
/// </summary>
internal static class DataInstructCommand
{
    public static Command Create()
    {
        var manifest = new Option<string>("--manifest") { Description = "manifest.jsonl to read", Required = true };
        var output = new Option<string>("--out") { Description = "pairs.jsonl to write", Required = true };
        var seed = new Option<long>("--seed") { Description = "template choices follow from this", DefaultValueFactory = _ => 0 };
        var perClip = new Option<int>("--per-clip") { Description = "single-turn pairs per clip (templates)", DefaultValueFactory = _ => 8 };
        var conversations = new Option<double>("--conversations") { Description = "share of clips that also get a multi-turn conversation (templates)", DefaultValueFactory = _ => 0.3 };
        var brief = new Option<double>("--short-answers")
        {
            Description = "share of one-fact questions (tempo, key, mode, meter, melody instrument, genre) that ask for a brief answer and get the bare value (templates)",
            DefaultValueFactory = _ => 0,
        };
        var url = new Option<string?>("--llm-url") { Description = "ask an OpenAI-compatible endpoint instead of templates (POST {url}/v1/chat/completions)" };
        var model = new Option<string?>("--llm-model") { Description = "the model name to send with --llm-url" };
        var key = new Option<string?>("--llm-key") { Description = "bearer key for --llm-url (default: $LLARK_LLM_KEY)" };
        var attempts = new Option<int>("--llm-attempts") { Description = "tries per clip before it is reported and skipped", DefaultValueFactory = _ => 3 };
        var parallel = new Option<int>("--llm-parallel") { Description = "requests in flight at once", DefaultValueFactory = _ => 4 };
        var command = new Command("instruct", "Write (query, response) instruction pairs for every clip of a manifest")
        {
            manifest, output, seed, perClip, conversations, brief, url, model, key, attempts, parallel,
        };
        command.SetAction((parse, ct) => DataCommand.Run(async () =>
        {
            string manifestPath = parse.GetValue(manifest)!, outPath = parse.GetValue(output)!;
            if (!File.Exists(manifestPath)) throw new FileNotFoundException($"manifest not found: {manifestPath}", manifestPath);
            Manifest loaded = Manifest.Load(manifestPath);
            foreach (JsonLineError error in loaded.Errors) await Console.Error.WriteLineAsync($"warning: skipped {error}").ConfigureAwait(false);
            InstructResult result;
            if (parse.GetValue(url) is { } endpoint)
            {
                string name = parse.GetValue(model) ?? throw new UsageException("--llm-model is required with --llm-url");
                if (parse.GetValue(attempts) < 1 || parse.GetValue(parallel) < 1) throw new UsageException("--llm-attempts and --llm-parallel must be at least 1");
                using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(3) };
                var client = new LlmClient(http, endpoint, name, parse.GetValue(key) ?? Environment.GetEnvironmentVariable("LLARK_LLM_KEY"), parse.GetValue(attempts));
                result = await InstructDataset.FromLlmAsync(loaded, client, parse.GetValue(parallel), Console.WriteLine, ct).ConfigureAwait(false);
            }
            else
            {
                if (parse.GetValue(perClip) < 1) throw new UsageException("--per-clip must be at least 1");
                if (parse.GetValue(conversations) is < 0 or > 1) throw new UsageException("--conversations must be between 0 and 1");
                if (parse.GetValue(brief) is < 0 or > 1 || double.IsNaN(parse.GetValue(brief))) throw new UsageException("--short-answers must be between 0 and 1");
                result = InstructDataset.FromTemplates(loaded, new InstructOptions
                {
                    Seed = parse.GetValue(seed),
                    PerClip = parse.GetValue(perClip),
                    ConversationRate = parse.GetValue(conversations),
                    ShortAnswerRate = parse.GetValue(brief),
                });
            }
            foreach (string skipped in result.SkippedClips) await Console.Error.WriteLineAsync($"warning: no pairs for {skipped}").ConfigureAwait(false);
            JsonLines.Write(outPath, result.Pairs);
            Console.WriteLine($"wrote {result.Pairs.Count} pairs for {result.Clips - result.SkippedClips.Count} of {result.Clips} clips to {outPath}: " +
                string.Join(", ", InstructionPair.Families.Select(f => $"{f} {result.Count(f)}")) +
                $"; {result.Conversations} conversations; {result.Pairs.Select(p => p.Query).Distinct(StringComparer.Ordinal).Count()} distinct queries" +
                (loaded.Errors.Count > 0 ? $"; {loaded.Errors.Count} manifest lines skipped" : ""));
            return result.Pairs.Count > 0 ? ExitCodes.Ok : ExitCodes.BadInput;
        }));
        return command;
    }
}
