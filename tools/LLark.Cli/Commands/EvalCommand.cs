using System.CommandLine;
using Grpc.Core;
using LLark.Evaluation;

namespace LLark.Cli.Commands;

/// <summary>
/// <c>llark eval --manifest M (--gateway URL [--api-key K] | --local [--model DIR] [--encoder DIR]) [--out DIR] [--limit N]</c>:
/// asks every labelled clip the held-out questions, scores the parsed answers beside chance and a DSP baseline,
/// prints the table and writes DIR/eval.json, DIR/eval.jsonl (answers as they come; a rerun resumes) and the plots.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var manifest = new Option<string>("--manifest") { Description = "manifest.jsonl of labelled clips", Required = true };
        var output = new Option<string>("--out") { Description = "folder for eval.json, eval.jsonl and the plots", DefaultValueFactory = _ => "eval-out" };
        var limit = new Option<int?>("--limit") { Description = "evaluate only the first N labelled clips" };
        var questions = new Option<int?>("--questions") { Description = "ask only the first N paraphrases of each task (default: all)" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "most tokens per answer", DefaultValueFactory = _ => 512 };
        var noBaseline = new Option<bool>("--no-baseline") { Description = "skip the DSP baseline" };
        var client = new ClientOptions();
        var local = LocalOptions.Create();
        var command = new Command("eval", "Score a model on a labelled manifest (tempo, key, melody instrument, genre) beside chance and a DSP baseline")
        {
            manifest, output, limit, questions, maxNew, noBaseline,
        };
        client.AddTo(command);
        local.AddTo(command);
        command.SetAction((parse, ct) => CliErrors.Run(async () =>
        {
            if (parse.GetValue(limit) is < 1) throw new UsageException("--limit must be at least 1");
            if (parse.GetValue(questions) is < 1) throw new UsageException("--questions must be at least 1");
            int max = parse.GetValue(maxNew);
            if (max < 1) throw new UsageException("--max-new-tokens must be at least 1");
            string manifestPath = parse.GetValue(manifest)!;
            if (!File.Exists(manifestPath)) throw new UsageException($"manifest not found: {manifestPath}");
            var options = new EvalOptions
            {
                ManifestPath = manifestPath, OutDir = parse.GetValue(output)!, Limit = parse.GetValue(limit),
                QuestionsPerTask = parse.GetValue(questions), RunBaseline = !parse.GetValue(noBaseline),
            };
            EvalReport report;
            if (parse.GetValue(local.Local))
            {
                if (parse.GetValue(client.Address) is not null) throw new UsageException("give --local or --gateway, not both");
                using LocalLLark llark = local.Load(parse, ct);
                Console.Error.WriteLine($"model {llark.ModelDirectory.Directory} ({llark.ModelDirectory.Source}), encoder {llark.EncoderDirectory.Directory} " +
                    $"({llark.EncoderDirectory.Source}), {llark.Fps} fps");
                report = await new EvalRunner(new LocalAnswerSource(llark, max), options, Console.Error).RunAsync(ct);
            }
            else
            {
                local.RefuseWithoutLocal(parse);
                string? address = parse.GetValue(client.Address) ?? Environment.GetEnvironmentVariable("LLARK_ADDRESS");
                if (address is null) throw new UsageException("give --gateway URL (or $LLARK_ADDRESS), or --local");
                using var channel = client.Channel(parse);
                try
                {
                    report = await new EvalRunner(new GatewayAnswerSource(channel, address, (uint)max), options, Console.Error).RunAsync(ct);
                }
                catch (RpcException e) when (e.StatusCode != StatusCode.Cancelled || !ct.IsCancellationRequested)
                {
                    return ClientOptions.Report(e);
                }
            }
            Console.Write(report.Table());
            Console.WriteLine($"wrote {Path.Combine(options.OutDir, "eval.json")}, {Path.Combine(options.OutDir, EvalRunner.LinesFile)}, " +
                "tempo_scatter.png, key_confusion.png, key_confusion_baseline.png");
            if (report.Skipped.Count > 0 || report.ManifestErrors.Count > 0)
                Console.WriteLine($"{report.Skipped.Count} clip problems and {report.ManifestErrors.Count} bad manifest lines (see eval.json)");
            return ExitCodes.Ok;
        }));
        return command;
    }
}
