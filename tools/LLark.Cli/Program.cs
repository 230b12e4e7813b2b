using System.CommandLine;
using LLark.Cli.Commands;

var root = new RootCommand("llark: run and inspect LLark models from the command line.")
{
    GenerateCommand.Create(),
    TokenizeCommand.Create(),
    BenchCommand.Create(),
    AskCommand.Create(),
    ClientCommands.Info(),
    ConvertJukeboxCommand.Create(),
    EmbedCommand.Create(),
    JukeboxCommands.Create(),
    new Command("data", "Make datasets: embed a manifest's clips") { DataEmbedCommand.Create() },
};
return await root.Parse(args).InvokeAsync();
