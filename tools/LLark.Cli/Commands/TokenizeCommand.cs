using System.CommandLine;

namespace LLark.Cli.Commands;

internal static class TokenizeCommand
{
    public static Command Create() => new("tokenize", "Tokenize text");
}
