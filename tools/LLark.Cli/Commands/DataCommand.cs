using System.CommandLine;
using LLark.Data.Instruct;
using LLark.Data.Synth;

namespace LLark.Cli.Commands;

/// <summary>
/// <c>llark data ...</c>: making datasets. Each verb lives in its own file and is listed in <see cref="Verbs"/>;
/// adding one (for example <c>data embed</c>) is one more entry there.
/// </summary>
internal static class DataCommand
{
    internal static readonly IReadOnlyList<Func<Command>> Verbs = [DataSynthCommand.Create, DataInstructCommand.Create, DataEmbedCommand.Create];

    public static Command Create()
    {
        var data = new Command("data", "Make datasets: synthesise labelled music, write instruction pairs, embed the clips");
        foreach (Func<Command> verb in Verbs) data.Subcommands.Add(verb());
        return data;
    }

    /// <summary>
    /// <see cref="CliErrors.Run(Func{Task{int}})"/> plus the data verbs' own failures: a bad input file (4), a missing
    /// tool or unreachable endpoint (5), a refused key (6).
    /// </summary>
    public static Task<int> Run(Func<Task<int>> verb) => CliErrors.Run(async () =>
    {
        try
        {
            return await verb().ConfigureAwait(false);
        }
        catch (Exception e) when (e is SynthInputException or FileNotFoundException or DirectoryNotFoundException)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}").ConfigureAwait(false);
            return ExitCodes.BadInput;
        }
        catch (Exception e) when (e is ToolUnavailableException or LlmUnavailableException)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}").ConfigureAwait(false);
            return ExitCodes.Unavailable;
        }
        catch (LlmUnauthorizedException e)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}").ConfigureAwait(false);
            return ExitCodes.Unauthorized;
        }
    });
}
