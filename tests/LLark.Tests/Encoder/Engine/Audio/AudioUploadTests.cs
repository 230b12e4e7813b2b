using System.Buffers.Binary;
using LLark.Encoder.Engine.Audio;

namespace LLark.Tests.Encoder.Engine.Audio;

/// <summary>
/// An upload appended in pieces prepares the clip exactly as the whole file does (the same bits, so the same id), a
/// WAV is decoded as it arrives and holds only a read's worth of its bytes, and a WAV it refuses is refused as soon
/// as the bytes show why.
/// </summary>
public sealed class AudioUploadTests
{
    // The spectral encoder's rate and a context shorter than the clips, so that both the resampling and the cut are exercised.
    private const int Rate = 22050;
    private const int Context = 20_000;

    private static float[][] Signal(int channels, int frames, int rate) =>
        [.. Enumerable.Range(0, channels).Select(c => WavWriter.Sine(frames, rate, 110 * (c + 1) + 7, 0.3 + 0.1 * c))];

    /// <summary>Every sample format, mono to 6 channels, longer than one read of the decoder (16,384 frames).</summary>
    public static TheoryData<string, int, int> Formats => new()
    {
        { "pcm8", 2, 48000 },
        { "pcm16", 1, 44100 },
        { "pcm24", 3, 96000 },
        { "pcm32", 2, 22050 },
        { "float32", 6, 16000 },
        { "float64", 2, 32000 },
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void EveryWavFormatStreamedInAnyPiecesGivesTheWholeFilesSamples(string format, int channels, int rate)
    {
        byte[] wav = WavWriter.Write(Signal(channels, rate + rate / 3, rate), rate, format);
        PreparedAudio whole = AudioFrontEnd.Prepare(wav, Rate, Context);
        foreach (int piece in new[] { 1, 3, 4096, 65_537, wav.Length })
        {
            AudioUpload upload = Stream(wav, piece);
            Assert.True(upload.Incremental, $"{format} in pieces of {piece} was not decoded as it arrived");
            AssertSame(whole, upload.Complete());
        }
    }

    public static TheoryData<string> Layouts => new(LayoutCases.Keys);

    /// <summary>Header layouts a whole-file decode reads: each must stream to the same samples.</summary>
    private static readonly Dictionary<string, Func<byte[]>> LayoutCases = new()
    {
        ["extensible PCM 24-bit"] = () => Layout(WavWriter.Fmt(1, 2, 44100, 24, subFormat: 1), "pcm24"),
        ["extensible float"] = () => Layout(WavWriter.Fmt(3, 2, 44100, 32, subFormat: 3), "float32"),
        ["a LIST chunk before the data"] = () => Layout(WavWriter.Fmt(1, 2, 44100, 16), "pcm16", before: ("LIST", "INFOISFT\u0005\0\0\0abcd\0"u8.ToArray())),
        ["an odd chunk and its pad before the data"] = () => Layout(WavWriter.Fmt(1, 2, 44100, 16), "pcm16", before: ("junk", new byte[7])),
        ["chunks after the data"] = () => Layout(WavWriter.Fmt(1, 2, 44100, 16), "pcm16", after: [("LIST", new byte[21]), ("id3 ", new byte[10])]),
        ["the same fmt chunk again after the data"] = () => Layout(WavWriter.Fmt(1, 2, 44100, 16), "pcm16", after: [("fmt ", WavWriter.Fmt(1, 2, 44100, 16))]),
        ["an odd data chunk: a stray byte after the last frame"] = () => OddData(),
        ["a RIFF size past the end of the file"] = () => RiffSize(Layout(WavWriter.Fmt(1, 1, 44100, 16), "pcm16"), uint.MaxValue),
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void EveryHeaderLayoutStreamsToTheWholeFilesSamples(string layout)
    {
        byte[] wav = LayoutCases[layout]();
        PreparedAudio whole = AudioFrontEnd.Prepare(wav, Rate, Context);
        foreach (int piece in new[] { 1, 5, 4096 })
        {
            AudioUpload upload = Stream(wav, piece);
            Assert.True(upload.Incremental);
            AssertSame(whole, upload.Complete());
        }
    }

    [Fact]
    public void Mp3OggAndUnusualWavLayoutsAreCollectedAndDecodedWhole()
    {
        byte[] fmt = WavWriter.Fmt(1, 1, 44100, 16);
        byte[] data = WavWriter.Data(Signal(1, 30_000, 44100), "pcm16").Data;
        byte[] dataBeforeFmt = WavWriter.Chunks(("data", data), ("fmt ", fmt));
        byte[] wideBlocks = WavWriter.Chunks(("fmt ", SetBlockAlign(fmt, 4)), ("data", data));
        foreach (byte[] clip in new[] { CompressedFixture("mp3"), CompressedFixture("ogg"), dataBeforeFmt, wideBlocks })
        {
            PreparedAudio whole = AudioFrontEnd.Prepare(clip, Rate, Context);
            AudioUpload upload = Stream(clip, 1000);
            Assert.False(upload.Incremental);
            Assert.True(upload.PeakHeldBytes >= clip.Length);
            AssertSame(whole, upload.Complete());
        }
    }

    [Fact]
    public void AMalformedHeaderIsRefusedAsSoonAsItArrivesNamingTheProblem()
    {
        byte[] wav = WavWriter.Write(Signal(2, 44100, 44100), 44100, "pcm16");
        byte[] zeroBlock = (byte[])wav.Clone();
        BinaryPrimitives.WriteInt16LittleEndian(zeroBlock.AsSpan(32), 0);
        byte[] shortFmt = WavWriter.Chunks(("fmt ", new byte[8]), ("data", new byte[4000]));
        byte[] adpcm = (byte[])wav.Clone();
        BinaryPrimitives.WriteInt16LittleEndian(adpcm.AsSpan(20), 2);
        foreach (var (clip, reason, named) in new[]
        {
            (zeroBlock, AudioDecodeError.Corrupt, "block align of 0"),
            (shortFmt, AudioDecodeError.Corrupt, "fmt chunk declares 8 bytes"),
            (adpcm, AudioDecodeError.Unsupported, "WAV encoding Adpcm"),
        })
        {
            var upload = new AudioUpload(Rate, Context);
            upload.Append(clip.AsSpan(0, 12));
            // The refusal comes with the bytes that show the problem, not at the end of the upload.
            var e = Assert.Throws<AudioDecodeException>(() => upload.Append(clip.AsSpan(12, Math.Min(4096, clip.Length - 12))));
            Assert.Equal(reason, e.Reason);
            Assert.Contains(named, e.Message, StringComparison.Ordinal);
            // And the whole-file path refuses it too.
            Assert.Throws<AudioDecodeException>(() => AudioFrontEnd.Prepare(clip, Rate, Context));
        }
    }

    [Fact]
    public void AClipPastTheDurationLimitIsRefusedAtItsHeader()
    {
        byte[] wav = WavWriter.Write(Signal(1, 44100, 44100), 44100, "pcm16");
        var upload = new AudioUpload(Rate, Context, new AudioLimits { MaxDuration = TimeSpan.FromSeconds(0.5) });
        Assert.Equal(AudioDecodeError.TooLong, Assert.Throws<AudioDecodeException>(() => upload.Append(wav.AsSpan(0, 64))).Reason);
    }

    [Fact]
    public void TheRefusalsAtTheEndAreTheWholeFilesToo()
    {
        byte[] wav = WavWriter.Write(Signal(2, 20_000, 44100), 44100, "pcm16");
        // Cut short: the data chunk declares more than arrives.
        AssertRefusedAlike(wav[..(wav.Length / 2)], AudioDecodeError.Truncated);
        // A data chunk of half a frame: no samples.
        AssertRefusedAlike(WavWriter.Chunks(("fmt ", WavWriter.Fmt(1, 2, 44100, 16)), ("data", new byte[2])), AudioDecodeError.Corrupt);
        AssertRefusedAlike(WavWriter.Chunks(("fmt ", WavWriter.Fmt(1, 2, 44100, 16)), ("data", [])), AudioDecodeError.Empty);
        // Not a WAV: the whole-file path names what it is.
        AssertRefusedAlike("hello, world, this is text"u8.ToArray(), AudioDecodeError.Unsupported);
        AssertRefusedAlike("RIFF"u8.ToArray(), AudioDecodeError.Unsupported);
        Assert.Equal(AudioDecodeError.Empty, Assert.Throws<AudioDecodeException>(() => new AudioUpload(Rate, Context).Complete()).Reason);
    }

    [Fact]
    public void ASecondDataChunkAfterTheSamplesIsRefusedRatherThanReadDifferently()
    {
        byte[] wav = Layout(WavWriter.Fmt(1, 1, 44100, 16), "pcm16", after: [("data", new byte[64])]);
        var e = Assert.Throws<AudioDecodeException>(() => Stream(wav, 4096).Complete());
        Assert.Equal(AudioDecodeError.Unsupported, e.Reason);
        Assert.Contains("second data chunk", e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// 10 minutes of 8-bit stereo at 44.1 kHz, a 53 MB file, made a piece at a time so the test never holds it either:
    /// the upload holds one piece and one read of the decoder, and allocates the context it keeps and fixed buffers,
    /// nothing that grows with the file.
    /// </summary>
    [Fact]
    public void ALargeStreamedWavHoldsAReadsWorthOfItsBytes()
    {
        const int rate = 44100, channels = 2, seconds = 600, piece = 64 << 10;
        long dataBytes = (long)rate * channels * seconds;
        var upload = new AudioUpload(Rate, 524_288, new AudioLimits { MaxBytes = 1L << 30 });
        byte[] header = WavWriter.Chunks(("fmt ", WavWriter.Fmt(1, channels, rate, 8)), ("data", []));
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), (uint)(header.Length - 8 + dataBytes));
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(header.Length - 4), (uint)dataBytes);
        var bytes = new byte[piece];
        long before = GC.GetAllocatedBytesForCurrentThread();
        upload.Append(header);
        for (long at = 0; at < dataBytes; at += piece)
        {
            int n = (int)Math.Min(piece, dataBytes - at);
            for (int i = 0; i < n; i++) bytes[i] = (byte)(128 + (int)(60 * Math.Sin((at + i) * 0.001)));
            upload.Append(bytes.AsSpan(0, n));
        }
        PreparedAudio prepared = upload.Complete();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(seconds, prepared.SourceSeconds, 6);
        Assert.Equal(524_288, prepared.Samples.Length);
        Assert.True(upload.Incremental);
        // A piece and a read (16,384 frames of 2 bytes), with room to compact: well under a megabyte of a 53 MB file.
        Assert.InRange(upload.PeakHeldBytes, 1, 256 << 10);
        // The kept context (2 MiB of floats, allocated once from the header's length), the decoder's and the resampler's
        // buffers, of which the pooled ones may come from an earlier clip.
        Assert.InRange(allocated, 2L << 20, (2L << 20) + (512 << 10));
        Assert.Equal(0, upload.HeldBytes);
    }

    private static AudioUpload Stream(byte[] bytes, int piece)
    {
        var upload = new AudioUpload(Rate, Context, sizeHint: bytes.Length);
        for (int at = 0; at < bytes.Length; at += piece)
            upload.Append(bytes.AsSpan(at, Math.Min(piece, bytes.Length - at)));
        return upload;
    }

    private static void AssertRefusedAlike(byte[] clip, AudioDecodeError reason)
    {
        Assert.Equal(reason, Assert.Throws<AudioDecodeException>(() => AudioFrontEnd.Prepare(clip, Rate, Context)).Reason);
        foreach (int piece in new[] { 1, 4096 })
            Assert.Equal(reason, Assert.Throws<AudioDecodeException>(() => Stream(clip, piece).Complete()).Reason);
    }

    internal static void AssertSame(PreparedAudio expected, PreparedAudio actual)
    {
        Assert.Equal((expected.SampleRate, expected.SourceSeconds, expected.SourceSampleRate, expected.SourceChannels, expected.Format),
            (actual.SampleRate, actual.SourceSeconds, actual.SourceSampleRate, actual.SourceChannels, actual.Format));
        Assert.Equal(expected.Samples.Select(BitConverter.SingleToInt32Bits), actual.Samples.Select(BitConverter.SingleToInt32Bits));
    }

    private static byte[] Layout(byte[] fmt, string format, (string, byte[])? before = null, (string, byte[])[]? after = null)
    {
        int channels = BinaryPrimitives.ReadUInt16LittleEndian(fmt.AsSpan(2));
        int rate = BinaryPrimitives.ReadInt32LittleEndian(fmt.AsSpan(4));
        byte[] data = WavWriter.Data(Signal(channels, rate / 2 + 1234, rate), format).Data;
        return WavWriter.Chunks([("fmt ", fmt), .. before is { } b ? new[] { b } : [], ("data", data), .. after ?? []]);
    }

    /// <summary>Mono PCM16 whose data chunk has one byte more than its frames: NAudio drops it, and so must the stream.</summary>
    private static byte[] OddData()
    {
        byte[] data = WavWriter.Data(Signal(1, 30_001, 44100), "pcm16").Data;
        return WavWriter.Chunks(("fmt ", WavWriter.Fmt(1, 1, 44100, 16)), ("data", [.. data, 0x7F]), ("LIST", new byte[4]));
    }

    private static byte[] RiffSize(byte[] wav, uint size)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(wav.AsSpan(4), size);
        return wav;
    }

    private static byte[] SetBlockAlign(byte[] fmt, ushort block)
    {
        byte[] copy = (byte[])fmt.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan(12), block);
        return copy;
    }

    private static byte[] CompressedFixture(string extension) =>
        File.ReadAllBytes(TestSupport.RepoPaths.Fixture("audio-formats", $"tone_440_660_stereo.{extension}"));
}
