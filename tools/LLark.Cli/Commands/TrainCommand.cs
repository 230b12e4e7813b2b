using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using LLark.Training;

namespace LLark.Cli.Commands;

/// <summary>
/// <c>llark train --config FILE [--resume] [--out DIR]</c>: instruction-tunes a LLark on an embedding set and
/// instruction pairs. Ctrl-C or SIGTERM (a preempted pod, a cluster's job stop) finishes the step under way, saves the
/// training state and exits 130; <c>--resume</c> continues from it. The servable checkpoint is written to DIR/model at the end.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config") { Description = "training config (JSON; see pipeline/LLark.Training/README.md)", Required = true };
        var resume = new Option<bool>("--resume") { Description = "continue from the training state saved in --out" };
        var output = new Option<string?>("--out") { Description = "run folder: loss.jsonl, state/, model/ (default: runs/<config name> beside the config)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object at the end instead of progress lines" };
        var command = new Command("train", "Train a LLark: projector + Llama on an embedding set and instruction pairs") { config, resume, output, json };
        // A synchronous action: Ctrl-C is handled here, so that saving the state is never cut short by a termination timeout.
        command.SetAction(parse => Run(parse.GetValue(config)!, parse.GetValue(resume), parse.GetValue(output), parse.GetValue(json)));
        return command;
    }

    private static int Run(string configPath, bool resume, string? outDir, bool json)
    {
        using var cts = new CancellationTokenSource();
        // The first signal stops after the step under way; a second one is left to its default and ends the process.
        bool Stop(string signal)
        {
            if (cts.IsCancellationRequested) return false;
            Console.Error.WriteLine($"stopping on {signal}: finishing this step and saving the training state (send it again to abort without saving)");
            cts.Cancel();
            return true;
        }
        ConsoleCancelEventHandler onCancel = (_, e) => e.Cancel = Stop("Ctrl-C");
        Console.CancelKeyPress += onCancel;
        // SIGTERM is what Kubernetes and most supervisors send first; without this, .NET exits on it and the steps since
        // the last save are lost.
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => context.Cancel = Stop("SIGTERM"));
        try
        {
            TrainingConfig config = TrainingConfig.Load(configPath);
            outDir ??= Path.Combine(config.BaseDirectory, "runs", Path.GetFileNameWithoutExtension(configPath));
            var trainer = new Trainer(config, outDir)
            {
                Progress = json ? null : new LineProgress(),
                Describe = json ? null : text => Console.WriteLine(text),
            };
            TrainingResult result = trainer.Run(resume, cts.Token);
            if (json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    outcome = result.Outcome.ToString().ToLowerInvariant(), step = result.Step, total_steps = result.TotalSteps, model = result.ModelDirectory,
                    loss = result.LastLoss, val_loss = result.ValidationLoss, train_examples = result.TrainExamples,
                    validation_examples = result.ValidationExamples, skipped = result.Skipped, steps_per_second = result.StepsPerSecond,
                    tokens_per_second = result.TokensPerSecond, out_dir = Path.GetFullPath(outDir),
                }));
            }
            else if (result.Outcome == TrainingOutcome.Completed)
            {
                Console.WriteLine($"done: {result.Step} steps; checkpoint in {result.ModelDirectory}; loss history in {Path.Combine(outDir, LossHistory.FileName)}");
            }
            if (result.Outcome == TrainingOutcome.Interrupted)
            {
                Console.Error.WriteLine($"interrupted at step {result.Step} of {result.TotalSteps}; the state is saved: run again with --resume --out {outDir}");
                return ExitCodes.Cancelled;
            }
            return ExitCodes.Ok;
        }
        catch (TrainingConfigException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.Usage;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>One line per report: step, loss, lr, speed and time left; validation on its own line.</summary>
    private sealed class LineProgress : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress p)
        {
            string line = p.ValidationLoss is { } v
                ? string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.TotalSteps}  val_loss {v:F4}")
                : string.Create(CultureInfo.InvariantCulture,
                    $"step {p.Step}/{p.TotalSteps}  loss {p.Loss:F4}  lr {p.Lr:E2}  grad_norm {p.GradNorm:F3}  {p.TokensPerSecond:F0} tok/s  {p.StepsPerSecond:F2} step/s  ETA {Eta(p.Eta)}");
            Console.WriteLine(line);
        }

        private static string Eta(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : $"{t.Minutes}m{t.Seconds:D2}s";
    }
}
