using LLark.Data;
using LLark.Tests.Encoder.Service;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Cli;

/// <summary><c>llark data embed</c>: a manifest into an embedding set, here and through the encoder service, resumable.</summary>
public sealed class DataEmbedCommandTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("llark-data-embed-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private string WriteManifest()
    {
        File.WriteAllBytes(Path.Combine(dir, "one.wav"), EncoderHarness.Wav(1, seconds: 1.5));
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        File.WriteAllBytes(Path.Combine(dir, "sub", "two.wav"), EncoderHarness.Wav(2, seconds: 2.5));
        File.WriteAllText(Path.Combine(dir, "noise.wav"), "this is not audio");
        string manifest = Path.Combine(dir, "manifest.jsonl");
        File.WriteAllLines(manifest,
        [
            """{"id":"one","audio":"one.wav","tempo_bpm":120}""",
            """{"audio":"sub/two.wav","key":"F# minor"}""",
            """{"id":"broken",""",
            """{"id":"gone","audio":"missing.wav"}""",
            """{"id":"noise","audio":"noise.wav"}""",
        ]);
        return manifest;
    }

    [Fact]
    public void EmbedsHereSkipsBadClipsAndResumes()
    {
        string manifest = WriteManifest(), output = Path.Combine(dir, "set");
        LlarkProcess.Output run = LlarkProcess.Run("data", "embed", "--manifest", manifest, "--out", output, "--encoder", EncoderHarness.ModelPath);
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains("manifest.jsonl:3", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("skipped gone", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("skipped noise", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("embedded 2, skipped 2", run.Stderr, StringComparison.Ordinal);

        EmbeddingSet set = EmbeddingSet.Load(output);
        Assert.Empty(set.Errors);
        Assert.Equal(["one", "sub/two"], set.Entries.Select(e => e.ClipId).Order(StringComparer.Ordinal));
        Assert.True(set.TryGet("sub/two", out EmbeddingEntry two));
        Assert.Equal(48, two.Width);
        Assert.Equal(25, two.Fps);
        Assert.Equal(3, two.Layer);
        Assert.Equal(64, two.EmbeddingId!.Length);
        // 2.5 s at 344.53 tokens/s is 861 tokens, pooled 13 to a frame: 66 frames.
        Assert.Equal(66, two.Frames);
        Assert.Equal(66 * 48, set.ReadFrames(two).Length);
        string[] failures = File.ReadAllLines(Path.Combine(output, "failures.jsonl"));
        Assert.Equal(2, failures.Length);

        // The same frames as `llark embed --encoder` writes for that clip alone.
        string single = Path.Combine(dir, "two.npy");
        Assert.Equal(0, LlarkProcess.Run("embed", "--encoder", EncoderHarness.ModelPath, "--out", single, Path.Combine(dir, "sub", "two.wav")).ExitCode);
        AssertClose(Npy.ReadFloat32(single).Data, set.ReadFrames(two));

        // A second run embeds nothing again; a clip whose file went missing from the set is embedded again.
        DateTime written = File.GetLastWriteTimeUtc(Path.Combine(output, "frames", "one.npy"));
        File.Delete(Path.Combine(output, set.Entries.Single(e => e.ClipId == "sub/two").File));
        LlarkProcess.Output again = LlarkProcess.Run("data", "embed", "--manifest", manifest, "--out", output, "--encoder", EncoderHarness.ModelPath);
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.Contains("3 clips to embed, 1 already in", again.Stderr, StringComparison.Ordinal);
        Assert.Equal(written, File.GetLastWriteTimeUtc(Path.Combine(output, "frames", "one.npy")));
        AssertClose(Npy.ReadFloat32(single).Data, EmbeddingSet.Load(output).ReadFrames(two));
    }

    [Fact]
    public async Task ThroughTheServiceGivesTheSameIdsAndFrames()
    {
        string manifest = WriteManifest();
        await using LoopbackHost encoder = await EncoderHarness.StartAsync(Path.Combine(dir, "cache"),
            new Dictionary<string, string?> { ["LLark:Encoder:ModelName"] = "tiny" });
        string remote = Path.Combine(dir, "remote"), local = Path.Combine(dir, "local");
        LlarkProcess.Output run = await Task.Run(() => LlarkProcess.Run("data", "embed", "--manifest", manifest, "--out", remote,
            "--gateway", encoder.GrpcAddress.ToString(), "--parallel", "3"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains("embedded 2, skipped 2", run.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, LlarkProcess.Run("data", "embed", "--manifest", manifest, "--out", local, "--encoder", EncoderHarness.ModelPath,
            "--model-name", "tiny").ExitCode);

        EmbeddingSet a = EmbeddingSet.Load(remote), b = EmbeddingSet.Load(local);
        foreach (EmbeddingEntry e in a.Entries)
        {
            Assert.True(b.TryGet(e.ClipId, out EmbeddingEntry f));
            Assert.Equal("tiny/blocks3/fps25/fp32", e.Encoder);
            Assert.Equal(f.Encoder, e.Encoder);
            Assert.Equal(f.EmbeddingId, e.EmbeddingId);
            Assert.Equal(f.Layer, e.Layer);
            AssertClose(b.ReadFrames(f), a.ReadFrames(e));
        }

        // Adding to a set from another encoder is refused by name, and nothing in it is lost.
        LlarkProcess.Output mixed = LlarkProcess.Run("data", "embed", "--manifest", manifest, "--out", local, "--encoder", EncoderHarness.ModelPath,
            "--model-name", "other", "--fps", "10");
        Assert.Equal(0, mixed.ExitCode);
        Assert.Contains("2 clips to embed, 2 already in", mixed.Stderr, StringComparison.Ordinal);
        File.Delete(Path.Combine(local, b.Entries.First().File));
        mixed = LlarkProcess.Run("data", "embed", "--manifest", manifest, "--out", local, "--encoder", EncoderHarness.ModelPath,
            "--model-name", "other", "--fps", "10");
        Assert.NotEqual(0, mixed.ExitCode);
        Assert.Contains("'tiny/blocks3/fps25/fp32'", mixed.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, EmbeddingSet.Load(local).Entries.Count);
    }

    /// <summary>A batch of clips runs as one forward pass, so values may differ from a lone clip's in the last bits.</summary>
    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4f * (1 + Math.Abs(expected[i])), $"value {i}: {actual[i]} vs {expected[i]}");
    }

    [Fact]
    public void NeedsExactlyOneEncoder()
    {
        string manifest = WriteManifest();
        LlarkProcess.Output run = LlarkProcess.Run("data", "embed", "--manifest", manifest, "--out", Path.Combine(dir, "x"));
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("exactly one of --encoder", run.Stderr, StringComparison.Ordinal);
    }
}
