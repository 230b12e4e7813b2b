using CsCheck;
using LLark.Encoder.Engine.Audio;
using LLark.Tests.Encoder.Engine.Audio;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Fuzz;

/// <summary>
/// AudioDecoder.Decode on mutated and random bytes ends in a decoded clip that keeps its promises or in an
/// AudioDecodeException in the decoder's own words; never another exception, never a hang, and never more
/// allocation than <see cref="AllowedBytes"/>.
/// </summary>
[Trait("Category", FuzzRun.Category)]
public sealed class AudioDecoderFuzzTests
{
    /// <summary>Tighter than the service's, so that the largest clip a case can decode to is small and the bound means something.</summary>
    private static readonly AudioLimits Limits = new() { MaxDuration = TimeSpan.FromSeconds(4), MaxChannels = 8, MaxSampleRate = 96_000 };

    private static readonly Lazy<(string Name, byte[] Bytes, int Header)[]> Seeds = new(() =>
    {
        byte[] Fixture(string extension) => File.ReadAllBytes(RepoPaths.Fixture("audio-formats", $"tone_440_660_stereo.{extension}"));
        float[] Tone(int frames, double hz) => WavWriter.Sine(frames, 8000, hz, 0.5);
        return
        [
            ("tone.mp3", Fixture("mp3"), 1024),
            // The identification, comment and setup headers (the codebooks) fill the first pages.
            ("tone.ogg", Fixture("ogg"), 4096),
            ("tone.flac", Fixture("flac"), 64),
            ("pcm8-mono.wav", WavWriter.Write([Tone(400, 440)], 8000, "pcm8"), 64),
            ("pcm16-stereo.wav", WavWriter.Write([Tone(300, 440), Tone(300, 660)], 22050, "pcm16"), 64),
            ("pcm24-mono.wav", WavWriter.Write([Tone(300, 440)], 44100, "pcm24"), 64),
            ("pcm32-stereo.wav", WavWriter.Write([Tone(200, 440), Tone(200, 660)], 48000, "pcm32"), 64),
            ("float32-mono.wav", WavWriter.Write([Tone(300, 440)], 16000, "float32"), 64),
            ("float64-stereo.wav", WavWriter.Write([Tone(200, 440), Tone(200, 660)], 32000, "float64"), 64),
        ];
    });

    /// <summary>A format's first bytes followed by noise: the parsers past the sniffing, on nothing they expect.</summary>
    private static readonly Gen<MutatedInput> Noise = Gen.Select(
        Gen.OneOf(
            ("riff", "RIFF\0\0\0\0WAVEfmt "u8.ToArray()),
            ("id3", "ID3\u0004\0\0\0\0\0\0"u8.ToArray()),
            ("mpeg", new byte[] { 0xFF, 0xFB, 0x90, 0x64 }),
            ("ogg", [.. "OggS\0\u0002"u8, .. new byte[20], .. "\u0001vorbis"u8])),
        Gen.Byte.Array[0, 4096],
        (prefix, noise) => new MutatedInput($"{prefix.Item1} + {noise.Length} random bytes", [.. prefix.Item2, .. noise], []));

    private static Gen<MutatedInput> Inputs => Gen.Frequency((4, MutationGen.Inputs(Seeds.Value)), (1, Noise));

    [Fact]
    public void EveryClipDecodesOrIsRefusedInTheDecodersWords() =>
        FuzzRun.Check(Inputs, input => Holds(input.ToString(), input.Bytes), iterations: 150, print: input => input.ToString());

    [Fact]
    public void TheUnmutatedSeedsDecode()
    {
        foreach (var (name, bytes, _) in Seeds.Value.Where(s => !s.Name.EndsWith(".flac", StringComparison.Ordinal)))
        {
            Outcome<DecodedAudio> outcome = Bounded.Run(() => AudioDecoder.Decode(bytes, Limits));
            Assert.True(outcome.Error is null, $"{name}: {outcome.Error}");
            Holds(name, bytes);
        }
    }

    private static MutatedInput Seed(string name, params Mutation[] mutations)
    {
        var (_, bytes, _) = Seeds.Value.Single(s => s.Name == name);
        return new MutatedInput(name, bytes, mutations);
    }

    /// <summary>Inputs the property found failing whose defects are fixed: they keep holding.</summary>
    private static IEnumerable<MutatedInput> FoundInputs =>
    [
        // A data chunk of 2 bytes, half a stereo PCM16 frame, decoded to a clip of zero frames.
        Seed("pcm16-stereo.wav", new SetField(40, 2, 4)),
        // The same through the float64 path: a data chunk of 0 bytes.
        Seed("float64-stereo.wav", new SetField(40, 0, 2)),
    ];

    public static TheoryData<string> FoundCases => new(FoundInputs.Select(c => c.ToString()));

    [Theory]
    [MemberData(nameof(FoundCases))]
    public void FoundRegressions(string name) => Holds(name, FoundInputs.Single(c => c.ToString() == name).Bytes);

    /// <summary>Inputs whose refusals once repeated a decoding library's own .NET message.</summary>
    private static IEnumerable<MutatedInput> RawMessageInputs =>
    [
        // NAudio's EndOfStreamException: "Unable to read beyond the end of the stream."
        Seed("float32-mono.wav", new Truncate(1463091663)),
        // NVorbis's ArgumentException: "Could not load the specified container! (Parameter 'containerReader')"
        new MutatedInput("ogg + 1024 zero bytes", [.. "OggS\0\u0002"u8, .. new byte[20], .. "\u0001vorbis"u8, .. new byte[1024]], []),
    ];

    public static TheoryData<string> RawMessageCases => new(RawMessageInputs.Select(c => c.ToString()));

    [Theory]
    [MemberData(nameof(RawMessageCases))]
    public void RawMessageRegressions(string name) => Holds(name, RawMessageInputs.Single(c => c.ToString() == name).Bytes);

    /// <summary>Inputs that once decoded to NaN samples.</summary>
    private static IEnumerable<MutatedInput> NonFiniteInputs =>
    [
        // The first sample's bits all ones: a NaN.
        Seed("float32-mono.wav", new SetField(59, 0xFFFF_FFFF, 4)),
    ];

    public static TheoryData<string> NonFiniteCases => new(NonFiniteInputs.Select(c => c.ToString()));

    [Theory]
    [MemberData(nameof(NonFiniteCases))]
    public void NonFiniteSampleRegressions(string name) => Holds(name, NonFiniteInputs.Single(c => c.ToString() == name).Bytes);

    /// <summary>
    /// The allocation bound: 48 bytes per input byte, plus 32 bytes per decoded sample (4 bytes a float: the growing
    /// list, its copy, the per-channel arrays), plus 8 MiB for the libraries' tables and buffers. A refusal is charged
    /// as if it decoded the most the limits allow, since a clip over the limit is refused only once it gets there.
    /// </summary>
    private static long AllowedBytes(int inputBytes, long decodedSamples) => 48L * inputBytes + 32L * decodedSamples + (8L << 20);

    private static long MostSamples => (long)(Limits.MaxDuration.TotalSeconds * Limits.MaxSampleRate * Limits.MaxChannels);

    private static void Holds(string name, byte[] bytes)
    {
        Outcome<DecodedAudio> outcome = Bounded.Run(() => AudioDecoder.Decode(bytes, Limits));
        long samples;
        switch (outcome.Error)
        {
            case null:
                DecodedAudio audio = outcome.Result!;
                Assert.InRange(audio.Channels.Length, 1, Limits.MaxChannels);
                Assert.InRange(audio.SampleRate, Limits.MinSampleRate, Limits.MaxSampleRate);
                Assert.True(audio.Frames > 0, "a decoded clip has samples");
                Assert.All(audio.Channels, c => Assert.Equal(audio.Frames, c.Length));
                Assert.True(audio.Frames <= Limits.MaxDuration.TotalSeconds * audio.SampleRate + 1, $"{audio.Frames} frames at {audio.SampleRate} Hz is past the duration limit");
                if (!audio.Channels.All(c => c.All(float.IsFinite)))
                    Assert.Fail("a decoded sample is NaN or infinite");
                samples = (long)audio.Frames * audio.Channels.Length;
                break;
            case AudioDecodeException refused:
                Assert.False(string.IsNullOrWhiteSpace(refused.Message));
                if (RawInnerMessage(refused) is { } raw)
                    Assert.Fail($"the refusal repeats a library's .NET message ({raw.GetType().Name}): {refused.Message}");
                samples = MostSamples;
                break;
            default:
                Assert.Fail($"not an AudioDecodeException: {outcome.Error}");
                return;
        }
        Assert.True(outcome.AllocatedBytes <= AllowedBytes(bytes.Length, samples),
            $"allocated {outcome.AllocatedBytes} bytes for {bytes.Length} input bytes and {samples} samples (bound {AllowedBytes(bytes.Length, samples)})");
    }

    /// <summary>
    /// An exception underneath whose message the refusal repeats, of a kind that signals a bug in the code that threw
    /// it: its message is the runtime's ("Index was outside the bounds of the array.") and tells a caller nothing
    /// about the clip. A library's own words ("Invalid WAV file - No fmt chunk found") are fine.
    /// </summary>
    private static Exception? RawInnerMessage(AudioDecodeException refused)
    {
        for (Exception? inner = refused.InnerException; inner is not null; inner = inner.InnerException)
        {
            bool runtime = inner is IndexOutOfRangeException or NullReferenceException or ArgumentException or InvalidCastException
                or OverflowException or DivideByZeroException or KeyNotFoundException or EndOfStreamException or ArrayTypeMismatchException;
            if (runtime && inner.Message.Length > 0 && refused.Message.Contains(inner.Message, StringComparison.Ordinal))
                return inner;
        }
        return null;
    }
}
