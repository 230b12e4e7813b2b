using CsCheck;
using LLark.Encoder.Engine.Audio;
using LLark.Tests.Encoder.Engine.Audio;

namespace LLark.Tests.Fuzz;

/// <summary>
/// An upload appended in random pieces agrees with the whole-file decode on mutated WAVs: where the whole file
/// decodes, the upload gives the same samples, bit for bit; where it is refused, so is the upload. The one allowed
/// difference is documented: a second "data" or a different "fmt " chunk after the samples, which the whole-file
/// decode reads instead of the first, is refused.
/// </summary>
[Trait("Category", FuzzRun.Category)]
public sealed class AudioUploadFuzzTests
{
    private const int Rate = 22050;
    private const int Context = 12_000;

    private static readonly AudioLimits Limits = new() { MaxDuration = TimeSpan.FromSeconds(4), MaxChannels = 8, MaxSampleRate = 96_000 };

    private static readonly Lazy<(string Name, byte[] Bytes, int Header)[]> Seeds = new(() =>
    {
        float[] Tone(int frames, double hz) => WavWriter.Sine(frames, 8000, hz, 0.5);
        float[][] Stereo(int frames) => [Tone(frames, 440), Tone(frames, 660)];
        byte[] Data(float[][] channels, string format) => WavWriter.Data(channels, format).Data;
        return
        [
            ("pcm8-mono.wav", WavWriter.Write([Tone(20_000, 440)], 8000, "pcm8"), 64),
            ("pcm16-stereo.wav", WavWriter.Write(Stereo(9000), 22050, "pcm16"), 64),
            ("pcm24-mono.wav", WavWriter.Write([Tone(3000, 440)], 44100, "pcm24"), 64),
            ("float32-stereo.wav", WavWriter.Write(Stereo(2000), 16000, "float32"), 64),
            ("float64-mono.wav", WavWriter.Write([Tone(2000, 440)], 32000, "float64"), 64),
            ("extensible-float.wav", WavWriter.Chunks(("fmt ", WavWriter.Fmt(3, 2, 8000, 32, subFormat: 3)), ("data", Data(Stereo(3000), "float32"))), 80),
            ("list-odd-pcm16.wav", WavWriter.Chunks(("fmt ", WavWriter.Fmt(1, 1, 8000, 16)), ("LIST", new byte[9]), ("data", Data([Tone(3001, 300)], "pcm16")),
                ("junk", new byte[3])), 96),
        ];
    });

    private static Gen<(MutatedInput Input, int Piece)> Inputs => Gen.Select(MutationGen.Inputs(Seeds.Value), Gen.Int[1, 6000]);

    [Fact]
    public void AnUploadInPiecesAgreesWithTheWholeFile() =>
        FuzzRun.Check(Inputs, c => Agrees(c.Input.Bytes, c.Piece), iterations: 200, print: c => $"{c.Input} in pieces of {c.Piece}");

    [Fact]
    public void TheUnmutatedSeedsStreamToTheWholeFilesSamples()
    {
        foreach (var (_, bytes, _) in Seeds.Value)
        {
            foreach (int piece in new[] { 1, 100, bytes.Length })
                Agrees(bytes, piece, mustDecode: true);
        }
    }

    private static void Agrees(byte[] bytes, int piece, bool mustDecode = false)
    {
        Outcome<PreparedAudio> whole = Bounded.Run(() => AudioFrontEnd.Prepare(bytes, Rate, Context, Limits));
        Outcome<PreparedAudio> streamed = Bounded.Run(() =>
        {
            var upload = new AudioUpload(Rate, Context, Limits);
            for (int at = 0; at < bytes.Length; at += piece)
                upload.Append(bytes.AsSpan(at, Math.Min(piece, bytes.Length - at)));
            return upload.Complete();
        });
        if (streamed.Error is not null and not AudioDecodeException)
            Assert.Fail($"the upload failed with {streamed.Error}");
        if (mustDecode) Assert.Null(whole.Error);
        if (whole.Error is not null)
        {
            Assert.True(streamed.Error is not null, $"the whole file is refused ({whole.Error.Message}) but the upload decodes");
            return;
        }
        if (streamed.Error is AudioDecodeException { Reason: AudioDecodeError.Unsupported } e
            && (e.Message.Contains("second data chunk", StringComparison.Ordinal) || e.Message.Contains("second fmt chunk", StringComparison.Ordinal)))
            return;
        Assert.True(streamed.Error is null, $"the whole file decodes but the upload is refused: {streamed.Error?.Message}");
        AudioUploadTests.AssertSame(whole.Result!, streamed.Result!);
    }
}
