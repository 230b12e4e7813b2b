using System.CommandLine;
using LLark.Cli.Commands;

var root = new RootCommand("llark: run and inspect LLark models from the command line.")
{
    GenerateCommand.Create(),
    TokenizeCommand.Create(),
    AskCommand.Create(),
    ClientCommands.Info(),
    ConvertJukeboxCommand.Create(),
    EmbedCommand.Create(),
    JukeboxCommands.Create(),
    DataCommand.Create(),
    EvalCommand.Create(),
    TrainCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
