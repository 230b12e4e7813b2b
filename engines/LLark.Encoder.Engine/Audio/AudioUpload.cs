using System.Buffers;
using System.Buffers.Binary;
using NAudio.Wave;

namespace LLark.Encoder.Engine.Audio;

/// <summary>
/// A clip that arrives in pieces, prepared for the encoder exactly as <see cref="AudioFrontEnd.Prepare"/> prepares the
/// whole file: the same samples, bit for bit, so the same embedding id. A WAV is decoded as its bytes arrive and only
/// what the front end keeps is held (the context it encodes, and the bytes of one read of the decoder): a 60 MB upload
/// never sits whole in memory. The rest of the file is still read, because LLark normalises by the whole clip's peak.
/// MP3 and Ogg Vorbis, whose decoders here read from a complete stream, are collected and decoded at the end, as is
/// a WAV whose layout the incremental reader does not follow (see <see cref="WavUploadReader"/>).
/// </summary>
public sealed class AudioUpload
{
    private readonly AudioLimits limits;
    private readonly int bufferHint;
    private readonly ByteQueue queue = new();
    // Set once the upload is collected whole: the queue then keeps every byte from the first.
    private bool collecting;
    private WavUploadReader? wav;
    private bool completed;

    /// <param name="sampleRate">The encoder's rate.</param>
    /// <param name="contextSamples">Samples the encoder sees; the rest of the clip only counts towards the peak.</param>
    /// <param name="limits">Bounds on the decoding work.</param>
    /// <param name="sizeHint">The size the sender announced, if any: the first allocation of a collected upload (at most 8 MiB).</param>
    public AudioUpload(int sampleRate, int contextSamples, AudioLimits? limits = null, long sizeHint = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sampleRate);
        ArgumentOutOfRangeException.ThrowIfNegative(contextSamples);
        SampleRate = sampleRate;
        ContextSamples = contextSamples;
        this.limits = limits ?? new AudioLimits();
        bufferHint = (int)Math.Clamp(sizeHint, 1L << 16, 8L << 20);
    }

    public int SampleRate { get; }

    public int ContextSamples { get; }

    /// <summary>Bytes appended so far.</summary>
    public long BytesReceived { get; private set; }

    /// <summary>True once the upload is known to be decoded as it arrives; false while undecided, or when it is collected whole.</summary>
    public bool Incremental => !collecting && wav is { Decoding: true };

    /// <summary>Bytes of the upload held now: the unread bytes of a streamed WAV, or all of a collected upload.</summary>
    public long HeldBytes => queue.Capacity;

    /// <summary>The most <see cref="HeldBytes"/> has been.</summary>
    public long PeakHeldBytes { get; private set; }

    /// <summary>
    /// The next bytes of the file. Throws <see cref="AudioDecodeException"/> as soon as a streamed WAV shows what it is
    /// refused for (a malformed header, an unsupported format, a clip past the limits), so that the sender can be
    /// stopped there.
    /// </summary>
    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (completed) throw new InvalidOperationException("the upload is complete");
        BytesReceived += bytes.Length;
        if (BytesReceived > limits.MaxBytes)
            throw new AudioDecodeException(AudioDecodeError.TooLarge, $"the audio has more than {limits.MaxBytes} bytes, the limit");
        queue.Append(bytes);
        if (!collecting) Advance(complete: false);
        Track();
    }

    /// <summary>
    /// The clip as the encoder is fed it, once every byte has been appended. Throws <see cref="AudioDecodeException"/>
    /// for what the whole-file path refuses.
    /// </summary>
    public PreparedAudio Complete()
    {
        if (completed) throw new InvalidOperationException("the upload is complete");
        completed = true;
        if (BytesReceived == 0) throw new AudioDecodeException(AudioDecodeError.Empty, "the audio is empty (0 bytes)");
        if (!collecting) Advance(complete: true);
        Track();
        if (collecting) return AudioFrontEnd.Prepare(queue.TakeAll(), SampleRate, ContextSamples, limits);
        PreparedAudio prepared = wav!.Finish();
        queue.Release();
        return prepared;
    }

    private void Advance(bool complete)
    {
        if (wav is null)
        {
            // "RIFF", its size, "WAVE": what AudioDecoder.Sniff calls a WAV. Anything else goes to the whole-file path,
            // which names the format it found or refuses.
            if (queue.Count < 12 && !complete) return;
            ReadOnlySpan<byte> head = queue.Span;
            if (head.Length < 12 || !head[..4].SequenceEqual("RIFF"u8) || !head[8..12].SequenceEqual("WAVE"u8))
            {
                Collect();
                return;
            }
            wav = new WavUploadReader(queue, limits, SampleRate, ContextSamples);
        }
        if (!wav.Advance(complete)) Collect();
    }

    /// <summary>From here on the upload is kept whole and decoded at the end, from its first byte.</summary>
    private void Collect()
    {
        collecting = true;
        queue.Reserve(bufferHint);
        wav = null;
    }

    private void Track() => PeakHeldBytes = Math.Max(PeakHeldBytes, HeldBytes);
}

/// <summary>
/// The bytes of an upload received and not yet read, in one array that is reused as they are consumed. While the
/// upload is streamed the array is small (a piece and a read) and is taken from the shared pool and given back at the
/// end, so that concurrent and successive uploads reuse the same few arrays rather than leave one on the large object
/// heap each; an upload collected whole gets arrays of its own.
/// </summary>
internal sealed class ByteQueue
{
    /// <summary>Past this the array is not pooled: a pool keeps what it is given back, and one huge piece should not stay resident.</summary>
    private const int MaxPooledBytes = 1 << 20;

    private byte[] buffer = [];
    private bool pooled;
    private bool reserved;
    private int from;

    /// <summary>Bytes held.</summary>
    public int Count { get; private set; }

    /// <summary>Where the first byte held is in the file.</summary>
    public long Offset { get; private set; }

    public int Capacity => buffer.Length;

    public ReadOnlySpan<byte> Span => buffer.AsSpan(from, Count);

    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (from + Count + bytes.Length > buffer.Length)
        {
            if (Count + bytes.Length <= buffer.Length)
                buffer.AsSpan(from, Count).CopyTo(buffer);
            else
                Replace(Math.Max(Count + bytes.Length, (int)Math.Min(Array.MaxLength, 2L * buffer.Length)));
            from = 0;
        }
        bytes.CopyTo(buffer.AsSpan(from + Count));
        Count += bytes.Length;
    }

    public void Consume(int count)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, Count);
        from += count;
        Count -= count;
        Offset += count;
        if (Count == 0) from = 0;
    }

    /// <summary>Room for <paramref name="capacity"/> bytes in all, allocated now rather than by doubling, and never pooled.</summary>
    public void Reserve(int capacity)
    {
        reserved = true;
        if (capacity > buffer.Length || pooled) Replace(Math.Max(capacity, Count));
    }

    /// <summary>Every byte held, in an array of exactly that length (the buffer itself when it fits), and nothing held after.</summary>
    public byte[] TakeAll()
    {
        byte[] all = !pooled && from == 0 && Count == buffer.Length ? buffer : buffer.AsSpan(from, Count).ToArray();
        Offset += Count;
        Release();
        return all;
    }

    /// <summary>Drops the bytes held and gives the array back.</summary>
    public void Release()
    {
        if (pooled) ArrayPool<byte>.Shared.Return(buffer);
        buffer = [];
        pooled = false;
        from = 0;
        Count = 0;
    }

    private void Replace(int capacity)
    {
        bool pool = !reserved && capacity <= MaxPooledBytes;
        byte[] grown = pool ? ArrayPool<byte>.Shared.Rent(capacity) : new byte[capacity];
        buffer.AsSpan(from, Count).CopyTo(grown);
        if (pooled) ArrayPool<byte>.Shared.Return(buffer);
        buffer = grown;
        pooled = pool;
        from = 0;
    }
}

/// <summary>
/// A WAV read as it arrives, chunk walk and sample conversion as NAudio's <c>WaveFileReader</c> and sample providers
/// do them for <see cref="AudioDecoder.Open"/>, so that the samples, and the clips refused, are those of the whole-file
/// path. The samples go through the same <see cref="AudioReader"/> and <see cref="FrontEndPipe"/>; a read waits until
/// the bytes it asks for have arrived, so the reads, and therefore the samples, are the same whatever the chunking.
/// Layouts it does not follow in one pass (no "fmt " before "data", a block align that is not the frame size, an odd
/// fmt chunk) are handed back to be decoded whole; a second "data" or a different "fmt " after the samples, which
/// NAudio would read instead of the first, is refused, since the first has been decoded and dropped by then.
/// </summary>
internal sealed class WavUploadReader
{
    /// <summary>Longest fmt chunk NAudio reads as its length says: past it the extra size it reads wraps (a short).</summary>
    private const int MaxFmtBytes = 18 + short.MaxValue;

    private static readonly Guid PcmSubFormat = new("00000001-0000-0010-8000-00aa00389b71");
    private static readonly Guid FloatSubFormat = new("00000003-0000-0010-8000-00aa00389b71");

    private readonly ByteQueue queue;
    private readonly AudioLimits limits;
    private readonly int sampleRate;
    private readonly int contextSamples;
    private Stage stage = Stage.Header;
    private long riffEnd;
    private byte[] fmtChunk = [];
    private Sample sample;
    private int sampleBytes;
    private int blockAlign;
    private long dataStart;
    private long dataSize;
    private long dataLeft;
    private FrontEndPipe? pipe;
    // The walk over the chunks after the samples: a pad byte may follow an odd chunk, and a chunk's body is skipped.
    private bool padNext;
    private long skipLeft;

    public WavUploadReader(ByteQueue queue, AudioLimits limits, int sampleRate, int contextSamples)
    {
        this.queue = queue;
        this.limits = limits;
        this.sampleRate = sampleRate;
        this.contextSamples = contextSamples;
    }

    private enum Stage { Header, Data, After, Done }

    private enum Sample { Pcm8, Pcm16, Pcm24, Pcm32, Float32, Float64 }

    /// <summary>True once the header has been read and the samples are being decoded as they arrive.</summary>
    public bool Decoding => stage != Stage.Header;

    /// <summary>
    /// Reads what the bytes held allow; with <paramref name="complete"/>, to the end of the file. False when the file
    /// must be decoded whole instead (nothing has been consumed then).
    /// </summary>
    public bool Advance(bool complete)
    {
        if (stage == Stage.Header)
        {
            HeaderStatus status = ReadHeader(queue.Span, complete);
            if (status == HeaderStatus.Fallback) return false;
            if (status == HeaderStatus.NeedMore) return true;
            if (!Open()) return false;
        }
        if (stage == Stage.Data)
        {
            // As AudioDecoder.OpenWav: a data chunk the file is too short for is refused before any sample is judged.
            if (complete && dataStart + dataSize > queue.Offset + queue.Count)
                throw new AudioDecodeException(AudioDecodeError.Truncated,
                    $"the WAV data chunk declares {dataSize} bytes but the file ends {dataStart + dataSize - queue.Offset - queue.Count} bytes short");
            while (complete || Ready())
            {
                if (pipe!.Step()) continue;
                stage = Stage.After;
                padNext = (dataSize & 1) != 0;
                break;
            }
        }
        if (stage == Stage.After) WalkAfter(complete);
        if (stage == Stage.Done) queue.Consume(queue.Count);
        return true;
    }

    /// <summary>The clip as the encoder is fed it, after <see cref="Advance"/> with complete; the decoder's buffers go back to the pool.</summary>
    public PreparedAudio Finish()
    {
        PreparedAudio prepared = pipe!.Finish();
        pipe.Reader.Dispose();
        return prepared;
    }

    private enum HeaderStatus { NeedMore, Fallback, Found }

    /// <summary>
    /// NAudio's chunk walk up to the data chunk, over the bytes from the file's start: chunks are read while a header fits
    /// before the RIFF size's end, an odd chunk is followed by a pad byte only when that byte is 0, and a chunk longer
    /// than what is left of the file ends the walk.
    /// </summary>
    private HeaderStatus ReadHeader(ReadOnlySpan<byte> b, bool complete)
    {
        riffEnd = 8L + BinaryPrimitives.ReadUInt32LittleEndian(b[4..]);
        byte[]? fmt = null;
        long at = 12;
        while (at + 8 <= riffEnd)
        {
            if (at + 8 > b.Length)
            {
                if (complete) break;
                return HeaderStatus.NeedMore;
            }
            ReadOnlySpan<byte> id = b.Slice((int)at, 4);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(b[((int)at + 4)..]);
            long body = at + 8;
            if (id.SequenceEqual("data"u8))
            {
                if (fmt is null) return HeaderStatus.Fallback;
                fmtChunk = fmt;
                dataStart = body;
                dataSize = length;
                return SameDataChunkAsTheTruncationCheck(b) ? HeaderStatus.Found : HeaderStatus.Fallback;
            }
            if (id.SequenceEqual("fmt "u8))
            {
                if (length < 16 || length > int.MaxValue)
                    throw new AudioDecodeException(AudioDecodeError.Corrupt, $"the WAV fmt chunk declares {length} bytes; its fields take 16");
                if (length == 17 || length > MaxFmtBytes) return HeaderStatus.Fallback;
                if (body + length > b.Length)
                {
                    if (complete) throw new AudioDecodeException(AudioDecodeError.Corrupt, "the WAV file ends inside its fmt chunk");
                    return HeaderStatus.NeedMore;
                }
                fmt = b.Slice((int)body, (int)length).ToArray();
            }
            else if (body + length > b.Length)
            {
                if (complete) break;
                return HeaderStatus.NeedMore;
            }
            at = body + length;
            if ((length & 1) != 0)
            {
                if (at < b.Length)
                {
                    if (b[(int)at] == 0) at++;
                }
                else if (!complete) return HeaderStatus.NeedMore;
            }
        }
        throw new AudioDecodeException(AudioDecodeError.Corrupt, fmt is null
            ? "the WAV file has no fmt chunk (the format of its samples) before its data"
            : "the WAV file has no data chunk within the size its RIFF header gives");
    }

    /// <summary>
    /// AudioDecoder.OpenWav finds the data chunk for its truncation check by a simpler walk (every odd chunk padded). Where
    /// the two walks differ the file is decoded whole, so that it is refused or read as before.
    /// </summary>
    private bool SameDataChunkAsTheTruncationCheck(ReadOnlySpan<byte> b)
    {
        long at = 12;
        while (at + 8 <= b.Length)
        {
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(b[((int)at + 4)..]);
            if (b.Slice((int)at, 4).SequenceEqual("data"u8)) return at + 8 == dataStart;
            at += 8L + size + (size & 1);
        }
        return false;
    }

    /// <summary>The format's checks, in AudioDecoder.OpenWav's order; false to decode the file whole.</summary>
    private bool Open()
    {
        ReadOnlySpan<byte> f = fmtChunk;
        var encoding = (WaveFormatEncoding)BinaryPrimitives.ReadUInt16LittleEndian(f);
        int channels = BinaryPrimitives.ReadInt16LittleEndian(f[2..]);
        int rate = BinaryPrimitives.ReadInt32LittleEndian(f[4..]);
        blockAlign = BinaryPrimitives.ReadInt16LittleEndian(f[12..]);
        int bits = BinaryPrimitives.ReadInt16LittleEndian(f[14..]);
        // NAudio keeps at most 100 bytes of the format's extension, and none when there are more.
        ReadOnlySpan<byte> extra = f.Length > 18 && f.Length - 18 <= 100 ? f[18..] : [];
        if (blockAlign <= 0)
            throw new AudioDecodeException(AudioDecodeError.Corrupt, $"the WAV fmt chunk gives a block align of {blockAlign} bytes; a frame takes at least one");
        AudioDecoder.CheckShape(channels, rate, limits, "WAV");
        bool pcm = encoding is WaveFormatEncoding.Pcm && bits is 8 or 16 or 24 or 32;
        bool ieee = encoding is WaveFormatEncoding.IeeeFloat && bits is 32 or 64;
        bool extensible = encoding is WaveFormatEncoding.Extensible && bits is 8 or 16 or 24 or 32;
        if (!pcm && !ieee && !extensible)
            throw new AudioDecodeException(AudioDecodeError.Unsupported,
                $"WAV encoding {encoding} with {bits} bits per sample is not supported (PCM 8/16/24/32-bit or float)");
        if (dataSize / blockAlign > AudioDecoder.MaxFrames(rate, limits)) throw AudioDecoder.TooLong(limits);
        if (extensible)
        {
            Guid sub = extra.Length >= 22 ? new Guid(extra.Slice(6, 16)) : Guid.Empty;
            if (sub == FloatSubFormat)
            {
                // NAudio reads an extensible float of any declared width as 32-bit floats; only a true 32-bit one is followed here.
                if (bits != 32) return false;
                ieee = true;
            }
            else if (sub != PcmSubFormat)
            {
                throw new AudioDecodeException(AudioDecodeError.Unsupported, extra.Length >= 22
                    ? $"WAV extensible sub-format {sub} is not supported (PCM or float)"
                    : "the WAV extensible format does not give its sub-format");
            }
        }
        (sample, sampleBytes) = (ieee, bits) switch
        {
            (true, 64) => (Sample.Float64, 8),
            (true, _) => (Sample.Float32, 4),
            (false, 8) => (Sample.Pcm8, 1),
            (false, 16) => (Sample.Pcm16, 2),
            (false, 24) => (Sample.Pcm24, 3),
            _ => (Sample.Pcm32, 4),
        };
        if (blockAlign != channels * sampleBytes) return false;
        queue.Consume((int)dataStart);
        dataLeft = dataSize;
        pipe = new FrontEndPipe(new AudioReader(Read, channels, rate, AudioFormat.Wav, limits) { FramesDeclared = dataSize / blockAlign }, sampleRate, contextSamples);
        stage = Stage.Data;
        return true;
    }

    /// <summary>Whether the bytes of the reader's next read have arrived (all of them, or the rest of the data chunk).</summary>
    private bool Ready()
    {
        long want = (long)pipe!.Reader.NextReadSamples * sampleBytes;
        // A read NAudio refuses fails at once.
        return want % blockAlign != 0 || queue.Count >= Math.Min(want, dataLeft);
    }

    /// <summary>
    /// What NAudio's WaveFileReader and the sample provider for the format give a read of <paramref name="count"/>
    /// samples: whole blocks only, never past the data chunk, a trailing part of a sample dropped.
    /// </summary>
    private int Read(float[] buffer, int offset, int count)
    {
        long want = (long)count * sampleBytes;
        if (want % blockAlign != 0)
        {
            throw new AudioDecodeException(AudioDecodeError.Corrupt,
                $"the WAV data chunk's {dataSize} bytes end partway through a frame of {blockAlign} bytes");
        }
        int n = (int)Math.Min(Math.Min(want, dataLeft), queue.Count);
        int samples = n / sampleBytes;
        Convert(queue.Span[..(samples * sampleBytes)], buffer.AsSpan(offset, samples));
        queue.Consume(n);
        dataLeft -= n;
        return samples;
    }

    /// <summary>The sample providers' arithmetic, operation for operation, so that every float has the same bits.</summary>
    private void Convert(ReadOnlySpan<byte> src, Span<float> dst)
    {
        switch (sample)
        {
            case Sample.Pcm8:
                for (int i = 0; i < dst.Length; i++) dst[i] = src[i] / 128f - 1.0f;
                break;
            case Sample.Pcm16:
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadInt16LittleEndian(src[(2 * i)..]) / 32768f;
                break;
            case Sample.Pcm24:
                for (int i = 0; i < dst.Length; i++)
                {
                    int at = 3 * i;
                    dst[i] = (((sbyte)src[at + 2] << 16) | (src[at + 1] << 8) | src[at]) / 8388608f;
                }
                break;
            case Sample.Pcm32:
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadInt32LittleEndian(src[(4 * i)..]) / 2147483648f;
                break;
            case Sample.Float32:
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadSingleLittleEndian(src[(4 * i)..]);
                break;
            default:
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src[(8 * i)..]);
                break;
        }
    }

    /// <summary>
    /// NAudio's walk goes on past the samples, and a "data" or "fmt " chunk there replaces the one read before it. The
    /// rest of the file is read and dropped; such a chunk is refused unless it repeats the format.
    /// </summary>
    private void WalkAfter(bool complete)
    {
        while (true)
        {
            if (skipLeft > 0)
            {
                int n = (int)Math.Min(skipLeft, queue.Count);
                queue.Consume(n);
                skipLeft -= n;
                if (skipLeft > 0)
                {
                    // Longer than the rest of the file: NAudio's walk ends there.
                    if (complete) stage = Stage.Done;
                    return;
                }
            }
            if (padNext)
            {
                if (queue.Count == 0 && !complete) return;
                if (queue.Count > 0 && queue.Span[0] == 0) queue.Consume(1);
                padNext = false;
            }
            if (queue.Offset + 8 > riffEnd || complete && queue.Count < 8)
            {
                stage = Stage.Done;
                return;
            }
            if (queue.Count < 8) return;
            ReadOnlySpan<byte> id = queue.Span[..4];
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(queue.Span[4..]);
            if (id.SequenceEqual("data"u8))
            {
                throw new AudioDecodeException(AudioDecodeError.Unsupported,
                    "the WAV file has a second data chunk after its samples; a whole-file decode reads the last one: send the clip in one Embed call");
            }
            if (id.SequenceEqual("fmt "u8))
            {
                if (length == fmtChunk.Length && queue.Count < 8 + length && !complete) return;
                if (length != fmtChunk.Length || queue.Count < 8 + length || !queue.Span.Slice(8, (int)length).SequenceEqual(fmtChunk))
                {
                    throw new AudioDecodeException(AudioDecodeError.Unsupported,
                        "the WAV file has a second fmt chunk after its samples, unlike the first; a whole-file decode reads its samples by the last one: send the clip in one Embed call");
                }
                queue.Consume(8 + (int)length);
            }
            else
            {
                queue.Consume(8);
                skipLeft = length;
            }
            padNext = (length & 1) != 0;
        }
    }
}
