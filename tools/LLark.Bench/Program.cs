using System.CommandLine;
using LLark.Bench.Commands;

var root = new RootCommand("llark-bench: benchmarks of the LLark engines and services that print figures.")
{
    BenchCommand.Create(),
    BenchServeCommand.Create(),
    BenchBatchCommand.Create(),
    BenchEmbedCommand.Create(),
    BenchE2eCommand.Create(),
    BenchLoadCommand.Create(),
    BenchPrefixCommand.Create(),
    RandomModelCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
