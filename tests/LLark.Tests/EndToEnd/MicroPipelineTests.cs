using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using LLark.Common.V1;
using LLark.Data;
using LLark.Encoder.Service;
using LLark.Language.Service;
using LLark.Language.V1;
using LLark.Tests.Cli;
using LLark.Tests.Encoder.Service;
using LLark.Tests.Language.Service;
using LLark.Tests.TestSupport;
using LLark.Training;

namespace LLark.Tests.EndToEnd;

/// <summary>
/// Making a model, small, end to end, with the commands a user runs: synthesise labelled clips, write instruction
/// pairs, embed the clips, train the bundled tiny LLark a few steps, serve the checkpoint from the real language
/// service (asking by raw audio, so the encoder service embeds it), and evaluate it. Bad input on the way is reported
/// and skipped, and a config that disagrees with the data is refused without touching the finished run.
/// </summary>
public sealed class MicroPipelineTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("llark-micro-pipeline-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static string Repo(string path) => Path.Combine(RepoPaths.Root, path);

    private static LlarkProcess.Output Ok(params string[] args)
    {
        LlarkProcess.Output run = LlarkProcess.Run(args);
        Assert.True(run.ExitCode == 0, $"llark {string.Join(' ', args)} exited {run.ExitCode}:\n{run.Stderr}\n{run.Stdout}");
        return run;
    }

    [Fact]
    public async Task SynthInstructEmbedTrainServeAndEvaluate()
    {
        // 1. Labelled music.
        string synth = Path.Combine(dir, "synth");
        Ok("data", "synth", "--out", synth, "--clips", "4", "--seconds", "3", "--seed", "11");
        string manifestPath = Path.Combine(synth, "manifest.jsonl");
        Manifest manifest = Manifest.Load(manifestPath);
        Assert.Equal(4, manifest.Clips.Count);

        // A copy with a corrupt line and a clip whose file is gone: both reported, neither fatal.
        string damaged = Path.Combine(synth, "manifest-damaged.jsonl");
        File.WriteAllLines(damaged, [.. File.ReadAllLines(manifestPath), "{\"id\": \"torn\",", "{\"id\":\"gone\",\"audio\":\"audio/none.wav\",\"key\":\"C major\"}"]);

        // 2. Instruction pairs from the labels.
        string pairs = Path.Combine(dir, "pairs.jsonl");
        Ok("data", "instruct", "--manifest", manifestPath, "--out", pairs, "--seed", "1");
        List<InstructionPair> written = JsonLines.Read<InstructionPair>(pairs, []);
        Assert.All(manifest.Clips, c => Assert.Contains(written, p => p.ClipId == c.ClipId));

        // 3. The clips through the bundled tiny Jukebox.
        string embeddings = Path.Combine(dir, "embeddings");
        LlarkProcess.Output embed = Ok("data", "embed", "--manifest", damaged, "--out", embeddings, "--encoder", Repo("models/jukebox-tiny"));
        Assert.Contains("manifest-damaged.jsonl:5", embed.Stderr, StringComparison.Ordinal);
        Assert.Contains("skipped gone", embed.Stderr, StringComparison.Ordinal);
        EmbeddingSet set = EmbeddingSet.Load(embeddings);
        Assert.Equal(4, set.Entries.Count);

        // 4. A few steps of the LLark recipe on top of the bundled untrained model.
        string config = WriteConfig("train.json", pairs, embeddings, fps: 25);
        string run = Path.Combine(dir, "run");
        Ok("train", "--config", config, "--out", run);
        LossCurves curves = LossHistory.ReadCurves(Path.Combine(run, LossHistory.FileName));
        Assert.Equal(12, curves.Train.Count);
        double first = curves.Train.Take(3).Average(p => p.Loss), last = curves.Train.TakeLast(3).Average(p => p.Loss);
        Assert.True(last < first, $"the loss did not fall: {first:F3} -> {last:F3}");
        string model = Path.Combine(run, "model");
        JsonNode checkpoint = JsonNode.Parse(File.ReadAllText(Path.Combine(model, "config.json")))!;
        Assert.Equal(set.Entries.First().Encoder, (string?)checkpoint["mm_audio_encoder"]);

        // 5. The checkpoint as the language service loads it, the audio embedded by the encoder service.
        await using (LoopbackHost encoder = await LoopbackHost.StartAsync(EncoderServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
        {
            ["LLark:Encoder:ModelPath"] = Repo("models/jukebox-tiny"),
            ["LLark:Encoder:Cache:Directory"] = Path.Combine(dir, "cache"),
        }))))
        {
            await EncoderHarness.WaitServing(encoder);
            await using LoopbackHost language = await LoopbackHost.StartAsync(LanguageServiceHost.Build([], LoopbackHost.Settings(new Dictionary<string, string?>
            {
                ["LLark:Language:ModelPath"] = model,
                ["LLark:Language:EncoderAddress"] = encoder.GrpcAddress.ToString(),
            })));
            await LanguageServiceTests.WaitServing(language);
            var request = new GenerateRequest
            {
                AudioBytes = new AudioBytes { Data = ByteString.CopyFrom(File.ReadAllBytes(manifest.AudioPath(manifest.Clips[0]))) },
                Stopping = new StoppingParameters { MaxNewTokens = 16 },
            };
            request.Turns.Add(new LLark.Language.V1.ChatTurn { Human = "What key is this in?" });
            using var call = new LanguageService.LanguageServiceClient(language.Channel).Generate(request);
            var text = new System.Text.StringBuilder();
            GenerateFinal? final = null;
            await foreach (GenerateResponse frame in call.ResponseStream.ReadAllAsync())
            {
                if (frame.FrameCase == GenerateResponse.FrameOneofCase.Final) final = frame.Final;
                else text.Append(frame.Delta.Text);
            }
            Assert.NotNull(final);
            Assert.True(final.Usage.GeneratedTokens > 0);
            Assert.True(final.Usage.AudioTokens > 0);
        }

        // 6. The paper's scores, beside the DSP baseline and chance.
        string evalDir = Path.Combine(dir, "eval");
        LlarkProcess.Output eval = Ok("eval", "--manifest", damaged, "--local", "--model", model, "--encoder", Repo("models/jukebox-tiny"),
            "--out", evalDir, "--questions", "1", "--max-new-tokens", "12");
        Assert.Contains("mirex_weighted", eval.Stdout, StringComparison.Ordinal);
        Assert.Contains("gone", eval.Stdout + eval.Stderr, StringComparison.Ordinal);
        using JsonDocument report = JsonDocument.Parse(File.ReadAllText(Path.Combine(evalDir, "eval.json")));
        Assert.True(File.Exists(Path.Combine(evalDir, "tempo_scatter.png")));

        // 7. A config that disagrees with the data is refused by field, and the finished run is left as it was.
        string stateBefore = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(model, "model.safetensors"))));
        LlarkProcess.Output refused = LlarkProcess.Run("train", "--config", WriteConfig("wrong.json", pairs, embeddings, fps: 10), "--out", run);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("audio.fps", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal(stateBefore, Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(model, "model.safetensors")))));
    }

    private string WriteConfig(string name, string pairs, string embeddings, double fps)
    {
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["data"] = new Dictionary<string, object?> { ["pairs"] = pairs, ["embeddings"] = embeddings, ["validation_fraction"] = 0 },
            ["model"] = new Dictionary<string, object?> { ["base"] = Repo("models/llark-tiny-untrained") },
            ["mode"] = "full",
            ["optimizer"] = new Dictionary<string, object?> { ["lr"] = 1e-3, ["warmup_ratio"] = 0.1 },
            ["batch_size"] = 4,
            ["max_length"] = 384,
            ["steps"] = 12,
            ["seed"] = 5,
            ["audio"] = new Dictionary<string, object?> { ["fps"] = fps },
        }));
        return path;
    }
}
