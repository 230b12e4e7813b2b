using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using LLark.Evaluation;
using Engine = LLark.Language.Engine.Generation;
using AudioFrames = LLark.Language.Engine.Multimodal.AudioFrames;
using Google.Protobuf;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Encoder.V1;
using LLark.Language.V1;

namespace LLark.Cli.Commands;

/// <summary>
/// <c>llark ask CLIP "question"</c>: embeds the clip (once: the encoder caches it by content), then streams the
/// answer to the terminal as it is generated. Ctrl-C cancels the call, and with it the work on the server. With
/// <c>--local</c> no service is involved: the encoder and the checkpoint (the bundled tiny ones unless
/// <c>--model</c>/<c>--encoder</c> name others) run in this process.
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
        var local = LocalOptions.Create();
        var command = new Command("ask", "Ask a question about a clip, streaming the answer (through the gateway, or in process with --local)")
        {
            words, embedding, maxNew, temperature, seed, json,
        };
        client.AddTo(command);
        local.AddTo(command);
        command.SetAction((parse, ct) => CliErrors.Run(async () =>
        {
            string[] given = parse.GetValue(words)!;
            string? id = parse.GetValue(embedding);
            string? path = given.Length == 2 ? given[0] : null;
            string text = given[^1];
            if (parse.GetValue(local.Local))
            {
                if (id is not null || path is null) throw new UsageException("--local needs a clip and a question (no --embedding: there is no cache here)");
                if (parse.GetValue(temperature) != 0) throw new UsageException("--local decodes greedily; --temperature is for the server");
                uint max = parse.GetValue(maxNew);
                return AskLocal(local, parse, path, text, max == 0 ? 512 : checked((int)max), parse.GetValue(json), ct);
            }
            local.RefuseWithoutLocal(parse);
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

    /// <summary>The whole pipeline here: decode, embed, load the checkpoint, build the prompt, generate greedily.</summary>
    private static int AskLocal(LocalOptions local, ParseResult parse, string clip, string question, int maxNewTokens, bool json, CancellationToken ct)
    {
        if (!File.Exists(clip)) throw new FileNotFoundException($"clip not found: {clip}", clip);
        var clock = Stopwatch.StartNew();
        using LocalLLark llark = local.Load(parse, ct);
        double loadMs = clock.Elapsed.TotalMilliseconds;
        clock.Restart();
        AudioFrames frames = llark.Embed(EmbedCommand.ReadClip(clip), ct);
        double embedMs = clock.Elapsed.TotalMilliseconds;
        Engine.GenerationResult? result = null;
        using (Stream stdout = Console.OpenStandardOutput())
        {
            foreach (Engine.GenerationUpdate update in llark.Ask(frames, question, maxNewTokens, ct))
            {
                if (!json && update.TextDelta.Length > 0)
                {
                    stdout.Write(System.Text.Encoding.UTF8.GetBytes(update.TextDelta));
                    stdout.Flush();
                }
                result = update.Result ?? result;
            }
        }
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                text = result!.Text,
                finish_reason = LocalAnswerSource.FinishReasonName(result.FinishReason),
                prompt_tokens = result.PromptTokens,
                audio_frames = frames.Frames,
                generated_tokens = result.TokenIds.Count,
                load_ms = loadMs,
                embed_ms = embedMs,
                time_to_first_token_ms = result.TimeToFirstToken.TotalMilliseconds,
                decode_ms = result.DecodeTime.TotalMilliseconds,
                model = llark.ModelDirectory.Directory,
                encoder = llark.EncoderDirectory.Directory,
                fps = llark.Fps,
            }, LLark.Data.JsonLines.Options));
        }
        else Console.WriteLine();
        return result!.FinishReason == Engine.FinishReason.Cancelled ? ExitCodes.Cancelled : ExitCodes.Ok;
    }

    internal static async Task<int> Stream(LanguageService.LanguageServiceClient language, GenerateRequest request, bool json, CancellationToken ct)
    {
        using Stream stdout = Console.OpenStandardOutput();
        GenerateFinal final = await GatewayAnswerSource.GenerateAsync(language, request, json ? null : text =>
        {
            stdout.Write(System.Text.Encoding.UTF8.GetBytes(text));
            stdout.Flush();
        }, ct);
        if (json) Console.WriteLine(JsonFormatter.Default.Format(final));
        else Console.WriteLine();
        return ExitCodes.Ok;
    }
}
