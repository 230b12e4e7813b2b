using System.Diagnostics;
using LLark.Data;
using LLark.Encoder.Engine;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Engine.Model;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Multimodal;

namespace LLark.Evaluation;

/// <summary>How to load a model and encoder pair in process.</summary>
public sealed record LocalLLarkOptions
{
    /// <summary>The encoder's pooling rate; null uses the checkpoint's <c>mm_audio_fps</c>. One that differs is refused.</summary>
    public double? Fps { get; init; }

    /// <summary>Prior blocks to run; null uses the encoder folder's config.</summary>
    public int? Layers { get; init; }

    /// <summary>How the language model's CPU kernels hold its projections and head (fp32 by default).</summary>
    public WeightFormat Weights { get; init; } = WeightFormat.Fp32;
}

/// <summary>
/// LLark with no services: the audio encoder and the language model loaded here, one clip embedded at the
/// checkpoint's frame rate, questions answered greedily with LLark's stop string ("###"). Loading refuses a pair
/// whose widths or frame rates disagree (<see cref="ModelConfigException"/>), as the services do. Not thread-safe.
/// </summary>
public sealed class LocalLLark : IDisposable
{
    private LocalLLark(LLarkModel model, ClipEmbedder embedder, ResolvedModel modelDir, ResolvedModel encoderDir)
    {
        Model = model;
        Embedder = embedder;
        ModelDirectory = modelDir;
        EncoderDirectory = encoderDir;
    }

    public LLarkModel Model { get; }

    public ClipEmbedder Embedder { get; }

    public ResolvedModel ModelDirectory { get; }

    public ResolvedModel EncoderDirectory { get; }

    /// <summary>The frame rate clips are embedded at: the checkpoint's.</summary>
    public double Fps => Model.AudioFps;

    /// <summary>A short description for reports: the two folders' names.</summary>
    public string Name => $"local:{Path.GetFileName(ModelDirectory.Directory)}+{Path.GetFileName(EncoderDirectory.Directory)}";

    /// <summary>Loads both models; null folders resolve through <see cref="ModelLocator"/> (the bundled tiny ones).</summary>
    public static LocalLLark Load(string? modelDir, string? encoderDir, LocalLLarkOptions? options = null, CancellationToken ct = default)
    {
        options ??= new LocalLLarkOptions();
        ResolvedModel model = ModelLocator.Resolve(ModelLocator.Language, modelDir);
        ResolvedModel encoder = ModelLocator.Resolve(ModelLocator.Encoder, encoderDir);
        LLarkModel llark = LLarkModel.Load(model.Directory, new LlamaLoadOptions { Weights = options.Weights }, ct);
        try
        {
            // At the checkpoint's rate: a family that cannot make it refuses (EncoderConfigException).
            IAudioEncoder audio = AudioEncoderLoader.Load(encoder.Directory, new AudioEncoderOptions { Fps = llark.AudioFps, Layers = options.Layers }, ct);
            try
            {
                CheckPair(llark.AudioWidth, llark.AudioFps, audio.Width, options.Fps, model.Directory, encoder.Directory);
                return new LocalLLark(llark, new ClipEmbedder(audio), model, encoder);
            }
            catch
            {
                audio.Dispose();
                throw;
            }
        }
        catch
        {
            llark.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The frame rate a pair runs at, or why it cannot run: the encoder's width must be the projector's input width,
    /// and the pooling rate asked for (if any) must be the checkpoint's.
    /// </summary>
    public static double CheckPair(int modelWidth, double modelFps, int encoderWidth, double? requestedFps, string modelDir, string encoderDir)
    {
        if (modelWidth != encoderWidth)
            throw new ModelConfigException($"the model ({modelDir}) projects {modelWidth}-wide audio frames (mm_hidden_size) but the encoder " +
                $"({encoderDir}) makes {encoderWidth}-wide ones: they are not a pair");
        if (requestedFps is double fps && Math.Abs(fps - modelFps) > 1e-6)
            throw new ModelConfigException($"the model ({modelDir}) was trained on {modelFps} fps embeddings (mm_audio_fps); " +
                $"embedding at {fps} fps would not match");
        return modelFps;
    }

    /// <summary>Decodes and embeds one clip (LLark's front end: mono, at the encoder's rate, peak-normalised, one context at most).</summary>
    public AudioFrames Embed(byte[] clip, CancellationToken ct = default)
    {
        ClipFrames e = Embedder.Embed(clip, ct: ct);
        return new AudioFrames(e.Values, e.Frames, e.Width, Fps, Model.AudioEncoder);
    }

    public AudioFrames EmbedFile(string path, CancellationToken ct = default)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"clip not found: {path}", path);
        return Embed(File.ReadAllBytes(path), ct);
    }

    /// <summary>The answer to one question about embedded audio, update by update (text deltas, then the result).</summary>
    public IEnumerable<GenerationUpdate> Ask(AudioFrames audio, string question, int maxNewTokens = 512, CancellationToken ct = default)
    {
        var options = new GenerationOptions { MaxNewTokens = maxNewTokens, StopStrings = [LLarkPrompt.StopString] };
        options.Validate();
        using LLarkPromptInput prompt = Model.BuildPrompt([new ChatTurn(question)], audio);
        foreach (GenerationUpdate update in new TextGenerator(Model.Llama).Generate(prompt.Embeddings, prompt.Ids,
                     Model.Tokenizer.CreateDetokenizer(atStartOfText: false), options, ct))
            yield return update;
    }

    /// <summary>The whole answer and its wall time.</summary>
    public (GenerationResult Result, TimeSpan Elapsed) AskToEnd(AudioFrames audio, string question, int maxNewTokens = 512, CancellationToken ct = default)
    {
        var clock = Stopwatch.StartNew();
        GenerationResult? result = null;
        foreach (GenerationUpdate update in Ask(audio, question, maxNewTokens, ct)) result = update.Result ?? result;
        return (result ?? throw new InvalidOperationException("generation ended without a result"), clock.Elapsed);
    }

    public void Dispose()
    {
        Model.Dispose();
        Embedder.Encoder.Dispose();
    }
}
