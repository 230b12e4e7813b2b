using System.CommandLine;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Language.V1;

namespace LLark.Cli.Commands;

/// <summary>
/// <c>llark ask CLIP "question"</c>: embeds the clip (once: the encoder caches it by content), then streams the
/// answer to the terminal as it is generated. Ctrl-C cancels the call, and with it the work on the server.
/// </summary>
internal static class AskCommand
{
    public static Command Create()
    {
        var client = new ClientOptions();
        // CLIP QUESTION, or just QUESTION with --embedding.
        var words = new Argument<string[]>("clip-and-question")
        {
            Description = "the audio file (WAV, MP3, Ogg Vorbis) and the question; only the question with --embedding",
            Arity = new ArgumentArity(1, 2),
        };
        var embedding = new Option<string?>("--embedding") { Description = "a cached embedding id (from `llark embed`) instead of a clip" };
        var maxNew = new Option<uint>("--max-new-tokens") { Description = "most tokens to generate (0: the server's default, 512)" };
        var temperature = new Option<float>("--temperature") { Description = "0 = greedy (default)" };
        var seed = new Option<ulong?>("--seed") { Description = "random seed for sampling" };
        var json = new Option<bool>("--json") { Description = "print the final frame as JSON instead of streaming text" };
        var command = new Command("ask", "Ask a question about a clip, streaming the answer") { words, embedding, maxNew, temperature, seed, json };
        client.AddTo(command);
        command.SetAction((parse, ct) => CliErrors.Run(async () =>
        {
            string[] given = parse.GetValue(words)!;
            string? id = parse.GetValue(embedding);
            string? path = given.Length == 2 ? given[0] : null;
            string text = given[^1];
            if (id is null && path is null) throw new UsageException("give a clip and a question, or --embedding ID and a question");
            if (id is not null && path is not null) throw new UsageException("give a clip or --embedding ID, not both");
            using var channel = client.Channel(parse);
            try
            {
                if (id is null)
                {
                    if (!File.Exists(path)) throw new FileNotFoundException($"clip not found: {path}");
                    var encoder = new EncoderService.EncoderServiceClient(channel);
                    EmbedResponse embedded = await encoder.EmbedAsync(new EmbedRequest
                    {
                        Audio = new AudioBytes { Data = ByteString.CopyFrom(await File.ReadAllBytesAsync(path, ct)), Filename = Path.GetFileName(path) },
                    }, cancellationToken: ct);
                    id = embedded.EmbeddingId;
                }
                var request = new GenerateRequest
                {
                    EmbeddingId = id,
                    Stopping = new StoppingParameters { MaxNewTokens = parse.GetValue(maxNew) },
                    Sampling = new SamplingParameters { Temperature = parse.GetValue(temperature) },
                };
                if (parse.GetValue(seed) is { } s) request.Sampling.Seed = s;
                request.Turns.Add(new ChatTurn { Human = text });
                return await Stream(new LanguageService.LanguageServiceClient(channel), request, parse.GetValue(json), ct);
            }
            catch (RpcException e) when (e.StatusCode != StatusCode.Cancelled || !ct.IsCancellationRequested)
            {
                return ClientOptions.Report(e);
            }
        }));
        return command;
    }

    internal static async Task<int> Stream(LanguageService.LanguageServiceClient language, GenerateRequest request, bool json, CancellationToken ct)
    {
        using var call = language.Generate(request, cancellationToken: ct);
        using Stream stdout = Console.OpenStandardOutput();
        GenerateFinal? final = null;
        await foreach (GenerateResponse response in call.ResponseStream.ReadAllAsync(ct))
        {
            if (response.FrameCase == GenerateResponse.FrameOneofCase.Final) final = response.Final;
            else if (!json)
            {
                await stdout.WriteAsync(System.Text.Encoding.UTF8.GetBytes(response.Delta.Text), ct);
                await stdout.FlushAsync(ct);
            }
        }
        if (json) Console.WriteLine(JsonFormatter.Default.Format(final));
        else Console.WriteLine();
        return ExitCodes.Ok;
    }
}
