using LLark.Common;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Multimodal;
using LLark.Tests.Checkpoints;
using LLark.Tests.TestSupport;
using static TorchSharp.torch;

namespace LLark.Tests.Language.Engine.Multimodal;

public sealed class LLarkModelTests
{
    private static AudioFrames Frames(int count, int width = TinyLLark.AudioWidth, double fps = TinyLLark.Fps, int seed = 1)
    {
        var random = new Random(seed);
        return AudioFrames.FromRows([.. Enumerable.Range(0, count * width).Select(_ => (float)(random.NextDouble() * 2 - 1))], width, fps);
    }

    [Fact]
    public void FramesOfAnotherEncoderFamilyAreRefusedNamingBoth()
    {
        using LLarkModel demo = LLarkModel.Load(Path.Combine(RepoPaths.Root, "models", "llark-demo"));
        Assert.Equal("spectral-v1/fps5", demo.AudioEncoder);
        AudioFrames Frames(string encoder) => new(new float[4 * demo.AudioWidth], 4, demo.AudioWidth, demo.AudioFps, encoder);

        var other = Assert.Throws<InvalidRequestException>(() => demo.BuildPrompt([new ChatTurn("Which key?")], Frames("jukebox-5b/blocks36/fps5/fp32")));
        Assert.Equal("audio.encoder", other.Field);
        Assert.Contains("jukebox encoder family ('jukebox-5b/blocks36/fps5/fp32')", other.Message, StringComparison.Ordinal);
        Assert.Contains($"spectral family ('{demo.AudioEncoder}'", other.Message, StringComparison.Ordinal);

        var sibling = Assert.Throws<InvalidRequestException>(() => demo.BuildPrompt([new ChatTurn("Which key?")], Frames("spectral-v2/fps5")));
        Assert.Contains("do not match", sibling.Message, StringComparison.Ordinal);
        using LLarkPromptInput same = demo.BuildPrompt([new ChatTurn("Which key?")], Frames(demo.AudioEncoder!));
        Assert.Equal(4, same.AudioFrames);
    }

    [Fact]
    public void TheTemplateIsLLarksLlavaV0Style()
    {
        string text = LLarkPrompt.Render([new ChatTurn("What key is it in?", "A minor."), new ChatTurn("And the tempo?")], withAudio: true);
        Assert.Equal(LLarkPrompt.SystemMessage + "\n\n### Human: <audio>\nWhat key is it in?\n### Assistant: A minor.\n" +
                     "### Human: And the tempo?\n### Assistant:", text);
    }

    [Fact]
    public void AudioFramesAreProjectedIntoThePatchPositions()
    {
        using LLarkModel model = LLarkModel.Load(TinyLLark.Directory);
        AudioFrames audio = Frames(7);
        using LLarkPromptInput prompt = model.BuildPrompt([new ChatTurn("Describe this clip.")], audio);
        Assert.True(model.Tokenizer.TryGetAddedTokenId("<audio_patch>", out int patch));
        Assert.True(model.Tokenizer.TryGetAddedTokenId("<audio_start>", out int start));
        Assert.True(model.Tokenizer.TryGetAddedTokenId("<audio_end>", out int end));
        Assert.Equal([1025, 1026, 1027], new[] { patch, start, end });
        int first = Array.IndexOf(prompt.Ids, patch);
        Assert.Equal(start, prompt.Ids[first - 1]);
        Assert.Equal(end, prompt.Ids[first + 7]);
        Assert.Equal(7, prompt.Ids.Count(i => i == patch));
        Assert.Equal(1, prompt.Ids[0]);
        Assert.Equal(7, prompt.AudioFrames);

        using var scope = NewDisposeScope();
        var weights = model.Llama.CheckpointParameters();
        Tensor projectorWeight = LoadProjector("model.mm_projector.weight");
        Tensor projectorBias = LoadProjector("model.mm_projector.bias");
        Tensor frames = tensor(audio.Data, [7, TinyLLark.AudioWidth]);
        Tensor expected = frames.matmul(projectorWeight.t()).add(projectorBias);
        Tensor spliced = prompt.Embeddings[0].narrow(0, first, 7);
        Assert.True(spliced.allclose(expected, rtol: 1e-5, atol: 1e-5));
        // Text positions keep their token embeddings, the audio start/end rows included.
        Tensor rows = weights["model.embed_tokens.weight"].index_select(0, tensor(prompt.Ids.Select(i => (long)i).ToArray()));
        Assert.True(prompt.Embeddings[0].narrow(0, 0, first).equal(rows.narrow(0, 0, first)).all().item<bool>());
        Assert.True(prompt.Embeddings[0].narrow(0, first + 7, prompt.Ids.Length - first - 7).equal(rows.narrow(0, first + 7, prompt.Ids.Length - first - 7)).all().item<bool>());
    }

    private static Tensor LoadProjector(string name)
    {
        using var source = global::LLark.Checkpoints.CheckpointOpener.Open(Path.Combine(TinyLLark.Directory, "model.safetensors"));
        Tensor t = empty(source.Entries[name].Shape);
        source.ReadInto(name, t);
        return t;
    }

    [Fact]
    public void AudioTheCheckpointWasNotTrainedOnIsRefusedNamingTheField()
    {
        using LLarkModel model = LLarkModel.Load(TinyLLark.Directory);
        ChatTurn[] turns = [new("Describe this clip.")];
        Assert.Equal("audio.width", Assert.Throws<InvalidRequestException>(() => model.BuildPrompt(turns, Frames(5, width: 40))).Field);
        Assert.Equal("audio.fps", Assert.Throws<InvalidRequestException>(() => model.BuildPrompt(turns, Frames(5, fps: 10))).Field);
        float[] nan = Frames(3).Data;
        nan[4] = float.NaN;
        Assert.Equal("audio.frames", Assert.Throws<InvalidRequestException>(() =>
            model.BuildPrompt(turns, AudioFrames.FromRows(nan, TinyLLark.AudioWidth, TinyLLark.Fps))).Field);
        Assert.Equal("turns[0].human", Assert.Throws<InvalidRequestException>(() => model.BuildPrompt([new ChatTurn(" ")], null)).Field);
        Assert.Equal("turns", Assert.Throws<InvalidRequestException>(() => model.BuildPrompt([], null)).Field);
        Assert.Throws<ContextLengthException>(() => model.BuildPrompt(turns, Frames(model.ContextLength)));
    }

    [Fact]
    public void AnAnswerIsGeneratedAfterTheAudioAndStopsAtTheTurnMarker()
    {
        using LLarkModel model = LLarkModel.Load(TinyLLark.Directory);
        using LLarkPromptInput prompt = model.BuildPrompt([new ChatTurn("Describe this clip.")], Frames(20));
        var options = new GenerationOptions { MaxNewTokens = 16, StopStrings = [LLarkPrompt.StopString] };
        GenerationResult a = new TextGenerator(model.Llama).Generate(prompt.Embeddings, prompt.Ids, model.Tokenizer.CreateDetokenizer(false), options).Last().Result!;
        GenerationResult b = new TextGenerator(model.Llama).Generate(prompt.Embeddings, prompt.Ids, model.Tokenizer.CreateDetokenizer(false), options).Last().Result!;
        Assert.Equal(a.TokenIds, b.TokenIds);
        Assert.Equal(prompt.Ids.Length, a.PromptTokens);
        using LLarkPromptInput other = model.BuildPrompt([new ChatTurn("Describe this clip.")], Frames(20, seed: 2));
        GenerationResult c = new TextGenerator(model.Llama).Generate(other.Embeddings, other.Ids, model.Tokenizer.CreateDetokenizer(false), options).Last().Result!;
        Assert.NotEqual(a.TokenIds, c.TokenIds);
    }

    [Fact]
    public void ACheckpointThatDoesNotStateItsFrameRateIsRefused()
    {
        using var dir = new TempDirectory();
        foreach (string file in System.IO.Directory.GetFiles(TinyLLark.Directory)) File.Copy(file, Path.Combine(dir.Path, Path.GetFileName(file)));
        string config = Path.Combine(dir.Path, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"mm_audio_fps\"", "\"unused\"", StringComparison.Ordinal));
        var e = Assert.Throws<ModelConfigException>(() => LLarkModel.Load(dir.Path));
        Assert.Contains("mm_audio_fps", e.Message, StringComparison.Ordinal);
    }
}
