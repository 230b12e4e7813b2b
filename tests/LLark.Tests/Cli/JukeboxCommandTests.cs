using LLark.Checkpoints;
using LLark.Tests.Encoder.Engine;
using LLark.Tests.TestSupport;
using TorchSharp;

namespace LLark.Tests.Cli;

/// <summary><c>llark convert-jukebox</c>, <c>llark embed</c> and <c>llark jukebox</c> as processes, on the tiny Jukebox.</summary>
public sealed class JukeboxCommandTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("llark-jukebox-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    /// <summary>The tiny Jukebox converted by <c>llark convert-jukebox</c> into <paramref name="dir"/>/encoder, 3 blocks.</summary>
    internal static string Convert(string dir, string vqvae = "vqvae.pth.tar", string prior = "prior_level_2.pth.tar")
    {
        string output = Path.Combine(dir, "encoder");
        var run = LlarkProcess.Run("convert-jukebox", "--vqvae", JukeboxTiny.File(vqvae), "--prior", JukeboxTiny.File(prior), "--layers", "3", "--out", output);
        Assert.True(run.ExitCode == 0, run.Stderr);
        return output;
    }

    [Fact]
    public void ConvertKeepsOnlyTheEncodersTensorsAndEmbedReproducesLLarksPooledFrames()
    {
        string encoder = Convert(dir);
        using (var prior = new SafetensorsFile(Path.Combine(encoder, "prior_level_2.safetensors")))
        {
            Assert.Equal(7 + 3 * 12, prior.Entries.Count);
            Assert.DoesNotContain("prior.x_out.weight", prior.Entries.Keys);
            Assert.Equal(StoredDType.F16, prior.Entries["prior.transformer._attn_mods.2.mlp.c_fc.w"].DType);
        }
        using (var vqvae = new SafetensorsFile(Path.Combine(encoder, "vqvae.safetensors")))
            Assert.All(vqvae.Entries.Keys, k => Assert.True(k.StartsWith("encoders.2.", StringComparison.Ordinal) || k == "bottleneck.level_blocks.2.k", k));

        string npy = Path.Combine(dir, "clip.npy");
        var run = LlarkProcess.Run("embed", "--encoder", encoder, "--out", npy, JukeboxTiny.File("test_audio_4s.wav"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains("[106, 48]", run.Stdout, StringComparison.Ordinal);
        (float[] data, long[] shape) = LLark.Data.Npy.ReadFloat32(npy);
        JukeboxTiny.AssertClose(JukeboxTiny.Golden("llark_pooled_25fps_layer3.npy"), torch.tensor(data, shape), "embed --fps 25");
    }

    [Fact]
    [Trait("Category", "Heavy")]
    public void EmbedReadsTheOriginalCheckpointsAndTheJukemirlibPathAt10Fps()
    {
        string originals = Path.Combine(dir, "originals");
        Directory.CreateDirectory(originals);
        File.Copy(JukeboxTiny.File("vqvae.pth.tar"), Path.Combine(originals, "vqvae.pth.tar"));
        File.Copy(JukeboxTiny.File("prior_level_2.pth.tar"), Path.Combine(originals, "prior_level_2.pth.tar"));
        string npy = Path.Combine(dir, "clip10.npy");
        var run = LlarkProcess.Run("embed", "--encoder", originals, "--layers", "3", "--fps", "10", "--path", "jukemirlib", "--out", npy,
            JukeboxTiny.File("test_audio_4s.wav"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        (float[] data, long[] shape) = LLark.Data.Npy.ReadFloat32(npy);
        JukeboxTiny.AssertClose(JukeboxTiny.Golden("pooled_llark_10fps_layer3.npy"), torch.tensor(data, shape), "embed --fps 10");
    }

    [Fact]
    public void TrainVqvaeTrainsResumesAndWritesAFolderThatEmbeds()
    {
        string encoder = Convert(dir);
        string clips = Path.Combine(dir, "clips");
        Directory.CreateDirectory(clips);
        File.Copy(JukeboxTiny.File("test_audio_4s.wav"), Path.Combine(clips, "a.wav"));
        string trained = Path.Combine(dir, "trained");
        string[] common = ["jukebox", "train-vqvae", "--encoder", encoder, "--audio", clips, "--batch", "1", "--warmup", "0", "--log-every", "1",
            "--save-every", "2"];
        common = [.. common, "--out", trained, "--window", "8192"];
        var first = LlarkProcess.Run([.. common, "--steps", "2"]);
        Assert.True(first.ExitCode == 0, first.Stderr);
        Assert.Contains("step 2/2: loss", first.Stdout, StringComparison.Ordinal);
        Assert.Contains("saved", first.Stdout, StringComparison.Ordinal);

        var again = LlarkProcess.Run([.. common, "--steps", "3"]);
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("--resume", again.Stderr, StringComparison.Ordinal);
        var resumed = LlarkProcess.Run([.. common, "--steps", "3", "--resume"]);
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Contains("start step 2", resumed.Stdout, StringComparison.Ordinal);
        Assert.Contains("step 3/3: loss", resumed.Stdout, StringComparison.Ordinal);
        var badWindow = LlarkProcess.Run([.. common[..^4], "--steps", "3", "--window", "8200", "--out", Path.Combine(dir, "other")]);
        Assert.Equal(2, badWindow.ExitCode);
        Assert.Contains("hop length", badWindow.Stderr, StringComparison.Ordinal);

        using (var vqvae = new SafetensorsFile(Path.Combine(trained, "vqvae.safetensors")))
        {
            Assert.Equal("3", vqvae.Metadata["step"]);
            Assert.Contains("decoders.2.out.weight", vqvae.Entries.Keys);
        }
        var embed = LlarkProcess.Run("embed", "--encoder", trained, "--out", Path.Combine(dir, "t.npy"), JukeboxTiny.File("test_audio_4s.wav"));
        Assert.True(embed.ExitCode == 0, embed.Stderr);
    }

    [Fact]
    public void BadClipsAndBadSettingsExitWithTheirCodes()
    {
        string encoder = Convert(dir);
        string npy = Path.Combine(dir, "x.npy");
        string flac = RepoPaths.Fixture("audio-formats", "tone_440_660_stereo.flac");
        var unsupported = LlarkProcess.Run("embed", "--encoder", encoder, "--out", npy, flac);
        Assert.Equal(4, unsupported.ExitCode);
        Assert.Contains("FLAC", unsupported.Stderr, StringComparison.Ordinal);

        var tooDeep = LlarkProcess.Run("embed", "--encoder", encoder, "--layers", "5", "--out", npy, JukeboxTiny.File("test_audio_4s.wav"));
        Assert.Equal(3, tooDeep.ExitCode);
        var badPath = LlarkProcess.Run("embed", "--encoder", encoder, "--path", "sideways", "--out", npy, JukeboxTiny.File("test_audio_4s.wav"));
        Assert.Equal(2, badPath.ExitCode);
        var noModel = LlarkProcess.Run("embed", "--encoder", Path.Combine(dir, "nothing"), "--out", npy, JukeboxTiny.File("test_audio_4s.wav"));
        Assert.Equal(3, noModel.ExitCode);
    }
}
