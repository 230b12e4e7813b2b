using LLark.Checkpoints;
using LLark.Common;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Engine.Model;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;

namespace LLark.Cli.Commands;

/// <summary>Turns what a verb throws into one line on stderr and the exit code that says whose fault it was.</summary>
internal static class CliErrors
{
    public static async Task<int> Run(Func<Task<int>> verb)
    {
        try
        {
            return await verb().ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("cancelled");
            return ExitCodes.Cancelled;
        }
        catch (Exception e) when (e is InvalidRequestException or ContextLengthException or UsageException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.Usage;
        }
        catch (AudioDecodeException e)
        {
            Console.Error.WriteLine($"error: cannot decode the clip ({e.Reason}): {e.Message}");
            return ExitCodes.BadInput;
        }
        catch (LLark.Encoder.Engine.UnusableClipException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.BadInput;
        }
        catch (Exception e) when (e is CheckpointException or ModelConfigException or EncoderConfigException or InvalidDataException
                                      or FileNotFoundException or DirectoryNotFoundException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.BadModel;
        }
    }

    public static Task<int> Run(Func<int> verb) => Run(() => Task.FromResult(verb()));
}

/// <summary>The command line itself is wrong (a missing or contradictory option).</summary>
internal sealed class UsageException(string message) : Exception(message);
