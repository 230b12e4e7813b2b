using System.CommandLine;
using Google.Protobuf;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Language.V1;

namespace LLark.Cli.Commands;

/// <summary>Client verbs against the gateway: <c>llark embed-clip CLIP</c> (returns the id) and <c>llark info</c>.</summary>
internal static class ClientCommands
{
    public static Command EmbedClip()
    {
        var client = new ClientOptions();
        var clip = new Argument<string>("clip") { Description = "audio file (WAV, MP3, Ogg Vorbis)" };
        var command = new Command("embed-clip", "Embed a clip on the server; prints its embedding id (reuse it with `llark ask --embedding ID`)") { clip };
        client.AddTo(command);
        command.SetAction((parse, ct) => CliErrors.Run(async () =>
        {
            string path = parse.GetValue(clip)!;
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
        }));
        return command;
    }

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
