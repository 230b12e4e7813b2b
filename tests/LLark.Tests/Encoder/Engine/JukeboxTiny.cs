using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using LLark.Encoder.Engine.Model;
using LLark.Tests.TestSupport;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Tests.Encoder.Engine;

/// <summary>The tiny random-weight Jukebox of tests/fixtures/jukebox-tiny and its golden outputs (see its README).</summary>
internal static class JukeboxTiny
{
    public const double Tolerance = 1e-4;

    public static string File(string name) => RepoPaths.Fixture("jukebox-tiny", name);

    public static JsonNode Fixture { get; } = JsonNode.Parse(System.IO.File.ReadAllText(File("fixture.json")))!;

    /// <summary>The authoritative config (fixture.json's hps), running <paramref name="layers"/> prior blocks.</summary>
    public static JukeboxEncoderConfig Config(int layers = 3) =>
        JukeboxEncoderConfig.FromHps(Fixture["vqvae_hps"], Fixture["prior_hps"], layers, "fixture.json");

    /// <summary>(vqvae, prior) file names of each stored container.</summary>
    public static TheoryData<string, string> Formats => new()
    {
        { "vqvae.pth.tar", "prior_level_2.pth.tar" },
        { "vqvae.zip.pth", "prior_level_2.zip.pth" },
        { "vqvae.safetensors", "prior_level_2.safetensors" },
    };

    public static JukeboxEncoder Load(string vqvae = "vqvae.safetensors", string prior = "prior_level_2.safetensors", int layers = 3) =>
        JukeboxEncoderLoader.Load(File(vqvae), File(prior), new JukeboxLoadOptions { Config = Config(layers) });

    /// <summary>The 4 s test clip as the references read it: int16 / 32768, divided by its peak.</summary>
    public static float[] NormalizedAudio()
    {
        byte[] wav = System.IO.File.ReadAllBytes(File("test_audio_4s.wav"));
        int at = 12;
        while (Encoding.ASCII.GetString(wav, at, 4) != "data")
            at += 8 + BinaryPrimitives.ReadInt32LittleEndian(wav.AsSpan(at + 4));
        int bytes = BinaryPrimitives.ReadInt32LittleEndian(wav.AsSpan(at + 4));
        var audio = new float[bytes / 2];
        for (int i = 0; i < audio.Length; i++)
            audio[i] = BinaryPrimitives.ReadInt16LittleEndian(wav.AsSpan(at + 8 + 2 * i)) / 32768f;
        float peak = audio.Max(MathF.Abs);
        for (int i = 0; i < audio.Length; i++)
            audio[i] /= peak;
        return audio;
    }

    public static Tensor Golden(string name)
    {
        (float[] data, long[] shape) = LLark.Data.Npy.ReadFloat32(File(name));
        return tensor(data, shape);
    }

    public static long[] GoldenCodes(string name) => LLark.Data.Npy.ReadInt64(File(name)).Data;

    /// <summary>Largest absolute difference; shapes must agree.</summary>
    public static double MaxAbsDiff(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var diff = (expected.to(ScalarType.Float64) - actual.to(ScalarType.Float64)).abs().max();
        return diff.item<double>();
    }

    public static void AssertClose(Tensor expected, Tensor actual, string what, double tolerance = Tolerance)
    {
        double diff = MaxAbsDiff(expected, actual);
        Assert.True(diff <= tolerance, $"{what}: max |diff| {diff:E2} > {tolerance:E0}");
    }
}
