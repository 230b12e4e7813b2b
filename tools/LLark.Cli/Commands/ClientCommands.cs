using System.CommandLine;
using Google.Protobuf;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Language.V1;

namespace LLark.Cli.Commands;

/// <summary>Client verbs against the gateway: the server half of <c>llark embed CLIP</c>, and <c>llark info</c>.</summary>
internal static class ClientCommands
{
    /// <summary>The server half of <c>llark embed</c>: sends the clip, prints the embedding id.</summary>
    public static Task<int> EmbedRemote(ClientOptions client, ParseResult parse, string path, CancellationToken ct) => CliErrors.Run(async () =>
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"clip not found: {path}");
        using var channel = client.Channel(parse);
        try
        {
            EmbedResponse r = await new EncoderService.EncoderServiceClient(channel).EmbedAsync(new EmbedRequest
            {
                Audio = new AudioBytes { Data = ByteString.CopyFrom(await File.ReadAllBytesAsync(path, ct)), Filename = Path.GetFileName(path) },
            }, cancellationToken: ct);
            Console.WriteLine(r.EmbeddingId);
            Console.Error.WriteLine($"{r.Frames} frames x {r.Width} at {r.Fps} fps ({r.EncoderModelId}){(r.Cached ? ", from the cache" : "")}");
            return ExitCodes.Ok;
        }
        catch (RpcException e)
        {
            return ClientOptions.Report(e);
        }
    });

    public static Command Info()
    {
        var client = new ClientOptions();
        var command = new Command("info", "What the language model behind the gateway expects");
        client.AddTo(command);
        command.SetAction((parse, ct) => CliErrors.Run(async () =>
        {
            using var channel = client.Channel(parse);
            try
            {
                ModelInfo info = await new LanguageService.LanguageServiceClient(channel).GetModelInfoAsync(new GetModelInfoRequest(), cancellationToken: ct);
                Console.WriteLine(JsonFormatter.Default.Format(info));
                return ExitCodes.Ok;
            }
            catch (RpcException e)
            {
                return ClientOptions.Report(e);
            }
        }));
        return command;
    }
}
