using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace LLark.Encoder.Service.Caching;

/// <summary>
/// The bytes of a stored embedding, the same on disk and in Redis. Little-endian throughout:
/// <code>
///   0  8  magic "LLRKEMB\0"
///   8  2  format version (1)
///  10  2  payload dtype (1 = float32)
///  12  4  frames
///  16  4  width
///  20  8  nominal fps (float64)
///  28  8  effective fps (float64)
///  36  8  audio seconds (float64)
///  44  2  id length L1, then L1 bytes of the id (ASCII)
///   .  2  model id length L2, then L2 bytes of the model id (UTF-8)
///   .     frames x width float32 values, row-major
///   . 32  SHA-256 of every byte before it
/// </code>
/// A read checks all of it: a torn write, a flipped bit or an entry filed under the wrong id is refused, never served.
/// </summary>
public static class EntryFormat
{
    public const ushort Version = 1;
    private const ushort Float32 = 1;
    private const int FixedHeader = 44;
    private const int ChecksumBytes = 32;
    private static ReadOnlySpan<byte> Magic => "LLRKEMB\0"u8;

    public static byte[] Write(StoredEmbedding entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        byte[] id = Encoding.ASCII.GetBytes(entry.Id);
        byte[] model = Encoding.UTF8.GetBytes(entry.ModelId);
        long payload = (long)entry.Values.Length * sizeof(float);
        long total = FixedHeader + 2 + id.Length + 2 + model.Length + payload + ChecksumBytes;
        var bytes = new byte[checked((int)total)];
        Span<byte> b = bytes;
        Magic.CopyTo(b);
        BinaryPrimitives.WriteUInt16LittleEndian(b[8..], Version);
        BinaryPrimitives.WriteUInt16LittleEndian(b[10..], Float32);
        BinaryPrimitives.WriteInt32LittleEndian(b[12..], entry.Frames);
        BinaryPrimitives.WriteInt32LittleEndian(b[16..], entry.Width);
        BinaryPrimitives.WriteDoubleLittleEndian(b[20..], entry.Fps);
        BinaryPrimitives.WriteDoubleLittleEndian(b[28..], entry.EffectiveFps);
        BinaryPrimitives.WriteDoubleLittleEndian(b[36..], entry.AudioSeconds);
        int at = FixedHeader;
        at = WriteString(b, at, id);
        at = WriteString(b, at, model);
        Span<byte> values = b.Slice(at, (int)payload);
        if (BitConverter.IsLittleEndian) MemoryMarshal.AsBytes(entry.Values).CopyTo(values);
        else for (int i = 0; i < entry.Values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(values[(4 * i)..], entry.Values[i]);
        at += (int)payload;
        SHA256.HashData(b[..at], b[at..]);
        return bytes;
    }

    /// <summary>The entry, or throws <see cref="InvalidDataException"/> saying what is wrong with the bytes.</summary>
    public static StoredEmbedding Read(ReadOnlySpan<byte> b, string expectedId)
    {
        if (b.Length < FixedHeader + 4 + ChecksumBytes) throw new InvalidDataException($"{b.Length} bytes are too few for an entry");
        if (!b[..8].SequenceEqual(Magic)) throw new InvalidDataException("bad magic: not an embedding entry");
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(b[8..]);
        if (version != Version) throw new InvalidDataException($"entry format version {version}, this service reads {Version}");
        Span<byte> sum = stackalloc byte[ChecksumBytes];
        SHA256.HashData(b[..^ChecksumBytes], sum);
        if (!sum.SequenceEqual(b[^ChecksumBytes..])) throw new InvalidDataException("checksum mismatch: the entry is torn or corrupt");
        if (BinaryPrimitives.ReadUInt16LittleEndian(b[10..]) != Float32) throw new InvalidDataException("unknown payload dtype");
        int frames = BinaryPrimitives.ReadInt32LittleEndian(b[12..]);
        int width = BinaryPrimitives.ReadInt32LittleEndian(b[16..]);
        double fps = BinaryPrimitives.ReadDoubleLittleEndian(b[20..]);
        double effective = BinaryPrimitives.ReadDoubleLittleEndian(b[28..]);
        double seconds = BinaryPrimitives.ReadDoubleLittleEndian(b[36..]);
        int at = FixedHeader;
        string id = ReadString(b, ref at, ascii: true);
        string model = ReadString(b, ref at, ascii: false);
        if (id != expectedId) throw new InvalidDataException($"the entry is for id '{id}', not '{expectedId}'");
        long payload = (long)frames * width * sizeof(float);
        if (frames < 1 || width < 1 || at + payload + ChecksumBytes != b.Length)
            throw new InvalidDataException($"{frames} frames x {width} values do not fill the entry's {b.Length} bytes");
        var values = new float[frames * width];
        ReadOnlySpan<byte> data = b.Slice(at, (int)payload);
        if (BitConverter.IsLittleEndian) data.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
        else for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(data[(4 * i)..]);
        return new StoredEmbedding(id, values, frames, width, fps, effective, model, seconds);
    }

    private static int WriteString(Span<byte> b, int at, byte[] text)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(b[at..], checked((ushort)text.Length));
        text.CopyTo(b[(at + 2)..]);
        return at + 2 + text.Length;
    }

    private static string ReadString(ReadOnlySpan<byte> b, ref int at, bool ascii)
    {
        int length = BinaryPrimitives.ReadUInt16LittleEndian(b[at..]);
        if (at + 2 + length > b.Length - ChecksumBytes) throw new InvalidDataException("a string runs past the end of the entry");
        ReadOnlySpan<byte> text = b.Slice(at + 2, length);
        at += 2 + length;
        return ascii ? Encoding.ASCII.GetString(text) : Encoding.UTF8.GetString(text);
    }
}
