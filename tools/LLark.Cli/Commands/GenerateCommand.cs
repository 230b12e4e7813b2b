using System.CommandLine;

namespace LLark.Cli.Commands;

internal static class GenerateCommand
{
    public static Command Create() => new("generate", "Generate text with a Llama model");
}
