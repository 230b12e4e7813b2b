using LLark.Cli.Commands;
using LLark.Common.V1;
using LLark.Encoder.Engine;
using LLark.Encoder.Engine.Model;
using LLark.Encoder.V1;
using LLark.Evaluation;
using LLark.Language.Engine.Multimodal;
using LLark.Tests.Encoder.Service;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Encoder.Engine;

public sealed class ClipEmbedderTests
{
    /// <summary>The three callers of the embed path: the encoder service, <c>llark data embed</c> here, and in-process LLark.</summary>
    [Fact]
    public async Task TheServiceDataEmbedAndLocalLLarkGiveOneIdAndTheSameFrames()
    {
        byte[] wav = File.ReadAllBytes(JukeboxTiny.File("test_audio_4s.wav"));
        string clip = Path.Combine(Path.GetTempPath(), $"llark-clip-{Guid.NewGuid():N}.wav");
        File.WriteAllBytes(clip, wav);
        string cache = Directory.CreateTempSubdirectory("llark-encoder-cache-").FullName;
        try
        {
            EmbedResponse service;
            await using (LoopbackHost host = await EncoderHarness.StartAsync(cache))
                service = await EncoderHarness.Client(host).EmbedAsync(EncoderHarness.Request(wav, frames: true));
            float[] serviceFrames = EmbeddingFramesCodec.Decode(service.Embedding);

            using var local = new LocalClipEmbedder(EncoderHarness.ModelPath, modelName: null, layers: null, fps: 25, ExtractionPath.LLarkPadded, "fp32", batchSize: 4);
            ClipEmbedding data = (await local.EmbedAsync([clip], CancellationToken.None))[0].Embedding!;

            using LocalLLark llark = LocalLLark.Load(TinyLLark.Directory, EncoderHarness.ModelPath);
            ClipFrames inProcess = llark.Embedder.Embed(wav);
            AudioFrames asked = llark.Embed(wav);

            Assert.Equal(service.EmbeddingId, data.EmbeddingId);
            Assert.Equal(service.EmbeddingId, inProcess.EmbeddingId);
            Assert.Equal(service.EncoderModelId, data.EncoderModelId);
            Assert.Equal(service.EncoderModelId, inProcess.EncoderId);
            Assert.Equal(serviceFrames, data.Values);
            Assert.Equal(serviceFrames, inProcess.Values);
            Assert.Equal(serviceFrames, asked.Data);
            Assert.Equal((int)service.Frames, data.Frames);
            Assert.Equal(3, data.Layer);
        }
        finally
        {
            File.Delete(clip);
            Directory.Delete(cache, recursive: true);
        }
    }

    [Fact]
    public void TheIdCoversTheSamplesAndEverySettingThatChangesTheFrames()
    {
        using JukeboxEncoder tiny = JukeboxTiny.Load();
        float[] samples = EncoderHarness.Samples(seed: 5);
        string Id(double fps, string dtype, ExtractionPath path, string? name, float[] clip) =>
            new ClipEmbedder(new JukeboxAudioEncoder(tiny, fps, dtype, path, name)).EmbeddingId(clip);

        string id = Id(25, "fp32", ExtractionPath.LLarkPadded, null, samples);
        Assert.True(ClipEmbedder.IsWellFormedId(id));
        Assert.Equal(id, Id(25, "fp32", ExtractionPath.LLarkPadded, null, [.. samples]));
        float[] other = [.. samples];
        other[^1] += 1e-3f;
        Assert.Distinct([id, Id(10, "fp32", ExtractionPath.LLarkPadded, null, samples), Id(25, "bf16", ExtractionPath.LLarkPadded, null, samples),
            Id(25, "fp32", ExtractionPath.Jukemirlib, null, samples), Id(25, "fp32", ExtractionPath.LLarkPadded, "mine", samples),
            Id(25, "fp32", ExtractionPath.LLarkPadded, null, other), Id(25, "fp32", ExtractionPath.LLarkPadded, null, samples[..^1])]);
        Assert.False(ClipEmbedder.IsWellFormedId(id.ToUpperInvariant()));
        Assert.False(ClipEmbedder.IsWellFormedId(id[..63]));
    }

    [Fact]
    public async Task ASpectralFolderServesItsOwnFamilyAndNeverSharesAnIdWithJukebox()
    {
        string spectralFolder = Path.Combine(RepoPaths.Root, "models", "spectral");
        byte[] wav = File.ReadAllBytes(JukeboxTiny.File("test_audio_4s.wav"));
        using IAudioEncoder spectral = AudioEncoderLoader.Load(spectralFolder, new AudioEncoderOptions { Fps = 25 });
        using IAudioEncoder jukebox = AudioEncoderLoader.Load(EncoderHarness.ModelPath, new AudioEncoderOptions { Fps = 25 });
        Assert.Equal(("spectral", "jukebox"), (spectral.Family, jukebox.Family));
        ClipFrames a = new ClipEmbedder(spectral).Embed(wav), b = new ClipEmbedder(jukebox).Embed(wav);
        Assert.NotEqual(a.EmbeddingId, b.EmbeddingId);
        Assert.Equal((131, 100, 25.0, "spectral-v1/fps25"), (a.Width, a.Frames, a.EffectiveFps, a.EncoderId));

        string cache = Directory.CreateTempSubdirectory("llark-encoder-cache-").FullName;
        try
        {
            await using LoopbackHost host = await EncoderHarness.StartAsync(cache, new Dictionary<string, string?> { ["LLark:Encoder:ModelPath"] = spectralFolder });
            EmbedResponse first = await EncoderHarness.Client(host).EmbedAsync(EncoderHarness.Request(wav, frames: true));
            EmbedResponse second = await EncoderHarness.Client(host).EmbedAsync(EncoderHarness.Request(wav));
            Assert.Equal(a.EmbeddingId, first.EmbeddingId);
            Assert.Equal(a.Values, EmbeddingFramesCodec.Decode(first.Embedding));
            Assert.Equal(("spectral-v1/fps25", 131u, false, true), (first.EncoderModelId, first.Width, first.Cached, second.Cached));
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }
}
