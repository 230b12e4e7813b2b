using System.Runtime.InteropServices;
using System.Security.Cryptography;
using LLark.Encoder.Engine;
using LLark.Encoder.Engine.Audio;
using LLark.Encoder.Engine.Spectral;
using LLark.Tests.Encoder.Engine.Audio;

namespace LLark.Tests.Encoder.Engine.Spectral;

/// <summary>
/// The spectral encoder's frames, bit for bit, as the first release computed them: the embedding ids and cached frames
/// of every clip already embedded depend on them, so a change to how the encoder computes (its buffers, its order of
/// work) must not change a single bit.
/// </summary>
public sealed class SpectralGoldenTests
{
    /// <summary>Tones, clicks and a seeded noise: every block of the frame (mel, chroma, onset, tempogram) is busy.</summary>
    private static float[] Clip(int samples)
    {
        var x = new float[samples];
        uint state = 12345;
        for (int i = 0; i < samples; i++)
        {
            state = state * 1664525 + 1013904223;
            double noise = (state >> 8) / (double)(1 << 24) - 0.5;
            double t = i / 22050.0;
            double click = i % 11025 < 40 ? 0.8 : 0;
            x[i] = (float)(0.3 * Math.Sin(2 * Math.PI * 261.63 * t) + 0.2 * Math.Sin(2 * Math.PI * 392 * t * (1 + 0.01 * Math.Sin(t))) + 0.05 * noise + click);
        }
        return x;
    }

    [Theory]
    [InlineData(524_288, "a7b82ee80d2654d217531999232f3463c8d55340f1a4dc29ca7657741ead7874")]
    // Past the context: cut to it, so the same frames as the full context.
    [InlineData(600_000, "a7b82ee80d2654d217531999232f3463c8d55340f1a4dc29ca7657741ead7874")]
    [InlineData(100_003, "4fd949a48f5a3cc28fa266cd81ca471a91a8fcc9f5a2d42f18b4a97f810303b2")]
    [InlineData(882, "0625b23c68d6abed16391aef3b86f6b474aa94a0fac72ab8a6e724dbf6cb8b84")]
    public void TheFramesAreThoseOfTheFirstRelease(int samples, string sha256)
    {
        float[] values = new SpectralEncoder().Embed(Clip(samples)).Values;
        Assert.Equal(sha256, Convert.ToHexStringLower(SHA256.HashData(MemoryMarshal.AsBytes(values.AsSpan()))));
    }

    /// <summary>A 30 s 8-bit stereo WAV at 48 kHz, decoded whole and as an upload in pieces: the id of the first release.</summary>
    [Fact]
    public void AWavsIdIsThatOfTheFirstRelease()
    {
        const int rate = 48000, frames = 30 * rate;
        float[] left = Clip(frames), right = [.. left.Select((x, i) => 0.5f * x + 0.2f * (float)Math.Sin(i * 0.01))];
        byte[] wav = WavWriter.Write([left, right], rate, "pcm8");
        var embedder = new ClipEmbedder(new SpectralEncoder());
        string whole = embedder.Prepare(wav).EmbeddingId;
        AudioUpload upload = embedder.StartUpload(sizeHint: wav.Length);
        for (int at = 0; at < wav.Length; at += 65_536)
            upload.Append(wav.AsSpan(at, Math.Min(65_536, wav.Length - at)));
        Assert.Equal("367e20f40e79974b82f8db6d0b034a5e2166ffdd7fd1e7a5a87f0e438d8388f9", whole);
        Assert.Equal(whole, embedder.Prepare(upload.Complete()).EmbeddingId);
    }
}
