using System.Text.Json;
using System.Text.Json.Serialization;
using LLark.Common;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Model;
using LLark.Language.Engine.Serving;
using LLark.Language.Engine.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Language.Engine.Multimodal;

/// <summary>
/// Audio embedding frames [Frames, Width], row-major float32, at <see cref="Fps"/> frames per second.
/// <see cref="ContentId"/> is the encoder's content address for them (its embedding id), where they came with one.
/// </summary>
public sealed record AudioFrames(float[] Data, int Frames, int Width, double Fps, string? Encoder = null, string? ContentId = null)
{
    /// <summary>
    /// What identifies these frames for the prefix cache: the encoder's content address where there is one (it already
    /// hashes the clip and everything that changes its frames), otherwise a hash of the frames themselves.
    /// </summary>
    public UInt128 Digest()
    {
        string shape = $"{Frames}x{Width}@{Fps:R}";
        if (!string.IsNullOrEmpty(ContentId)) return PromptKey.Digest("embedding-id", ContentId, Encoder ?? "", shape);
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        hash.AppendData(System.Text.Encoding.UTF8.GetBytes($"frames\n{Encoder}\n{shape}\n"));
        hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(Data.AsSpan()));
        return PromptKey.Truncate(hash.GetHashAndReset());
    }

    public static AudioFrames FromRows(float[] data, int width, double fps, string? encoder = null) =>
        width > 0 && data.Length % width == 0 ? new AudioFrames(data, data.Length / width, width, fps, encoder)
            : throw new InvalidRequestException("audio.frames", $"{data.Length} values do not make whole frames of width {width}");

    /// <summary>
    /// The largest |value| accepted in audio frames. Real encoder outputs (pooled activations, log spectra) stay within
    /// a few thousand; values near float32's limit (3e38) overflow to inf and NaN in the projector and attention, and
    /// the model answers garbage. 1e6 is far above any real frame and far below where float32 arithmetic breaks.
    /// </summary>
    public const float MaxMagnitude = 1e6f;

    /// <summary>Refuses NaN, infinities and values beyond <see cref="MaxMagnitude"/>, naming <paramref name="field"/>.</summary>
    public static void RequireValuesInRange(ReadOnlySpan<float> data, string field)
    {
        foreach (float v in data)
        {
            // !(|v| <= bound) also catches NaN.
            if (!(Math.Abs(v) <= MaxMagnitude))
                throw new InvalidRequestException(field, $"the audio embedding holds {v}; values must be finite and within +-{MaxMagnitude:0e0}");
        }
    }
}

/// <summary>
/// A prompt ready to run: its embeddings [1, T, hidden], the ids behind them, how many positions are audio, and what
/// each position holds (for the prefix cache).
/// </summary>
public sealed class LLarkPromptInput : IDisposable
{
    private readonly Lazy<PromptKey> key;

    internal LLarkPromptInput(Tensor embeddings, int[] ids, int audioFrames, Func<PromptKey> key)
    {
        Embeddings = embeddings;
        Ids = ids;
        AudioFrames = audioFrames;
        this.key = new Lazy<PromptKey>(key);
    }

    public Tensor Embeddings { get; }

    public int[] Ids { get; }

    public int AudioFrames { get; }

    /// <summary>
    /// Made on first read: frames sent inline are known by a hash of all their values, work that only a prompt bound
    /// for the prefix cache needs.
    /// </summary>
    public PromptKey Key => key.Value;

    public void Dispose() => Embeddings.Dispose();
}

/// <summary>What a LLark checkpoint's config.json adds to the Llama keys.</summary>
internal sealed record LLarkAudioConfig
{
    /// <summary>Width of the audio embeddings the projector takes (4800 for Jukebox-5B).</summary>
    [JsonPropertyName("mm_hidden_size")] public int? AudioWidth { get; init; }

    /// <summary>Frame rate the checkpoint was trained with; embeddings at another rate are refused.</summary>
    [JsonPropertyName("mm_audio_fps")] public double? AudioFps { get; init; }

    /// <summary>Optional id of the encoder (model and layer) whose embeddings the checkpoint was trained on.</summary>
    [JsonPropertyName("mm_audio_encoder")] public string? AudioEncoder { get; init; }

    /// <summary>Optional: how many encoder blocks the training embeddings were taken after (36 for LLark's Jukebox-5B).</summary>
    [JsonPropertyName("mm_audio_layer")] public int? AudioLayer { get; init; }

    /// <summary>Optional: the projector's shape in LLaVA's convention (absent: LLark's one Linear).</summary>
    [JsonPropertyName("mm_projector_type")] public string? ProjectorType { get; init; }
}

/// <summary>
/// LLark: Llama-2 with its tokenizer (plus <c>[PAD]</c>, <c>&lt;audio_patch&gt;</c>, <c>&lt;audio_start&gt;</c>,
/// <c>&lt;audio_end&gt;</c>) and the audio projector, loaded from one Hugging Face folder.
/// </summary>
public sealed class LLarkModel : IDisposable
{
    private readonly AudioProjector projector;
    private readonly int patchId;
    private readonly int startId;
    private readonly int endId;
    private readonly UInt128 promptScope;

    private LLarkModel(string directory, LlamaForCausalLM llama, AudioProjector projector, LlamaTextTokenizer tokenizer, LLarkAudioConfig audio,
        string identity)
    {
        Directory = directory;
        Identity = identity;
        promptScope = PromptKey.ScopeOf(identity, LLarkPrompt.TemplateId);
        Llama = llama;
        this.projector = projector;
        Tokenizer = tokenizer;
        AudioWidth = audio.AudioWidth!.Value;
        AudioFps = audio.AudioFps!.Value;
        AudioEncoder = audio.AudioEncoder;
        AudioLayer = audio.AudioLayer;
        patchId = AddedTokenId(LLarkPrompt.AudioPatch);
        startId = AddedTokenId(LLarkPrompt.AudioStart);
        endId = AddedTokenId(LLarkPrompt.AudioEnd);
    }

    public string Directory { get; }

    /// <summary>
    /// What distinguishes this model's state from any other's: a digest of the folder's path, its config.json, its
    /// weight files (names, sizes, modification times) and the run-time dtype and device.
    /// </summary>
    public string Identity { get; }

    public LlamaForCausalLM Llama { get; }

    public LlamaTextTokenizer Tokenizer { get; }

    public int AudioWidth { get; }

    public double AudioFps { get; }

    public string? AudioEncoder { get; }

    /// <summary>The encoder layer the checkpoint's training embeddings came from, where config.json says (mm_audio_layer).</summary>
    public int? AudioLayer { get; }

    public int ContextLength => Llama.Config.MaxPositionEmbeddings;

    public static LLarkModel Load(string directory, LlamaLoadOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new LlamaLoadOptions();
        string configPath = Path.Combine(directory, "config.json");
        LlamaConfig config = LlamaConfig.FromFile(configPath);
        LLarkAudioConfig audio = JsonSerializer.Deserialize<LLarkAudioConfig>(File.ReadAllText(configPath))!;
        if (audio.AudioWidth is not > 0)
            throw new ModelConfigException($"{configPath}: mm_hidden_size (the audio embedding width) is missing; this is not a LLark checkpoint");
        if (audio.AudioFps is not > 0)
            throw new ModelConfigException($"{configPath}: mm_audio_fps (the frame rate the checkpoint was trained with) is missing");
        string tokenizerPath = Path.Combine(directory, "tokenizer.model");
        if (!File.Exists(tokenizerPath)) throw new FileNotFoundException($"tokenizer not found: {tokenizerPath}");
        LlamaTextTokenizer tokenizer = LlamaTextTokenizer.Load(tokenizerPath);
        if (tokenizer.VocabSize > config.VocabSize)
            throw new ModelConfigException($"{configPath}: vocab_size {config.VocabSize} has no rows for LLark's added tokens " +
                $"({tokenizer.BaseVocabSize} pieces + {tokenizer.AddedTokens.Count} added = {tokenizer.VocabSize})");

        var projector = new AudioProjector(audio.AudioWidth.Value, config.HiddenSize, options.DType, options.Device ?? CPU,
            Multimodal.ProjectorType.Parse(audio.ProjectorType, configPath));
        try
        {
            LlamaForCausalLM llama = LlamaLoader.Load(directory, options, projector.CheckpointParameters(), cancellationToken);
            return new LLarkModel(directory, llama, projector, tokenizer, audio, ModelIdentity(directory, llama));
        }
        catch
        {
            projector.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Renders the conversation, expands <c>&lt;audio&gt;</c> to start + F patches + end, and splices the projected
    /// frames into the patch positions. Refuses audio whose width or frame rate the checkpoint was not trained on.
    /// </summary>
    public LLarkPromptInput BuildPrompt(IReadOnlyList<ChatTurn> turns, AudioFrames? audio)
    {
        if (audio is not null) CheckAudio(audio);
        string text = LLarkPrompt.Render(turns, withAudio: audio is not null);
        if (audio is not null)
        {
            string patches = string.Concat(Enumerable.Repeat(LLarkPrompt.AudioPatch, audio.Frames));
            text = text.Replace(LLarkPrompt.AudioPlaceholder, LLarkPrompt.AudioStart + patches + LLarkPrompt.AudioEnd, StringComparison.Ordinal);
        }
        int[] ids = Tokenizer.Encode(text, addBos: true);
        if (ids.Length >= ContextLength) throw new ContextLengthException(ids.Length + 1, ContextLength);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor idTensor = tensor(ids.Select(i => (long)i).ToArray(), dtype: ScalarType.Int64, device: Llama.Device).unsqueeze(0);
        Tensor embeds = Llama.Embed(idTensor).clone();
        int first = -1;
        if (audio is not null)
        {
            first = Array.IndexOf(ids, patchId);
            if (first < 0 || ids[first - 1] != startId || ids[first + audio.Frames] != endId || ids.Count(i => i == patchId) != audio.Frames)
                throw new InvalidOperationException("audio patches did not survive tokenization as one run");
            Tensor frames = tensor(audio.Data, [audio.Frames, audio.Width], dtype: ScalarType.Float32);
            embeds.narrow(1, first, audio.Frames).copy_(projector.Forward(frames).unsqueeze(0));
        }
        return new LLarkPromptInput(embeds.MoveToOuterDisposeScope(), ids, audio?.Frames ?? 0, () =>
        {
            var positions = new PromptPosition[ids.Length];
            for (int i = 0; i < ids.Length; i++) positions[i] = PromptPosition.Text(ids[i]);
            if (audio is not null)
            {
                UInt128 clip = audio.Digest();
                for (int f = 0; f < audio.Frames; f++) positions[first + f] = PromptPosition.Audio(clip, f);
            }
            return new PromptKey(promptScope, positions);
        });
    }

    private void CheckAudio(AudioFrames audio)
    {
        if (audio.Frames < 1) throw new InvalidRequestException("audio", "the audio embedding has no frames");
        if (audio.Width != AudioWidth)
            throw new InvalidRequestException("audio.width", $"audio embedding width {audio.Width} does not match the checkpoint's {AudioWidth} (mm_hidden_size)");
        if (Math.Abs(audio.Fps - AudioFps) > 1e-6)
            throw new InvalidRequestException("audio.fps", $"audio embeddings at {audio.Fps} fps do not match the {AudioFps} fps the checkpoint was trained with");
        if (audio.Data.Length != (long)audio.Frames * audio.Width)
            throw new InvalidRequestException("audio.frames", $"{audio.Data.Length} values for {audio.Frames} frames of width {audio.Width}");
        AudioFrames.RequireValuesInRange(audio.Data, "audio.frames");
        if (AudioEncoder is not null && audio.Encoder is not null && audio.Encoder != AudioEncoder)
        {
            string theirs = EncoderFamily(audio.Encoder), ours = EncoderFamily(AudioEncoder);
            throw new InvalidRequestException("audio.encoder", theirs != ours
                ? $"embeddings from the {theirs} encoder family ('{audio.Encoder}') cannot be read by a checkpoint trained on the {ours} family ('{AudioEncoder}', mm_audio_encoder)"
                : $"embeddings from encoder '{audio.Encoder}' do not match the checkpoint's '{AudioEncoder}'");
        }
    }

    /// <summary>The family an encoder id names: its first part, as the encoder engine writes ids ("jukebox-5b/...", "spectral-v1/...").</summary>
    private static string EncoderFamily(string encoderId)
    {
        int end = encoderId.IndexOfAny(['-', '/']);
        return end < 0 ? encoderId : encoderId[..end];
    }

    private static string ModelIdentity(string directory, LlamaForCausalLM llama)
    {
        var parts = new List<string> { Path.GetFullPath(directory), File.ReadAllText(Path.Combine(directory, "config.json")), llama.DType.ToString(), llama.Device.ToString(),
            llama.WeightFormat.Name() };
        foreach (string file in System.IO.Directory.EnumerateFiles(directory).Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(file);
            parts.Add($"{info.Name}:{info.Length}:{info.LastWriteTimeUtc.Ticks}");
        }
        return PromptKey.Digest([.. parts]).ToString("x32", System.Globalization.CultureInfo.InvariantCulture);
    }

    private int AddedTokenId(string token) => Tokenizer.TryGetAddedTokenId(token, out int id) ? id
        : throw new ModelConfigException($"{Directory}: the tokenizer lacks LLark's added token {token}");

    public void Dispose()
    {
        Llama.Dispose();
        projector.Dispose();
    }
}
