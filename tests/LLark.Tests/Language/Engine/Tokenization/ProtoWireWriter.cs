using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using LLark.Language.Engine.Tokenization;

namespace LLark.Tests.Language.Engine.Tokenization;

/// <summary>Appends fields to a growing buffer; nested messages are written into their own writer first.</summary>
internal sealed class ProtoWireWriter
{
    private readonly ArrayBufferWriter<byte> buffer = new();

    public void WriteVarint(int field, ulong value)
    {
        WriteTag(field, ProtoWire.Varint);
        WriteRawVarint(value);
    }

    /// <summary>Sign-extends like protobuf's int32, so -1 takes ten bytes as in files SentencePiece writes.</summary>
    public void WriteInt32(int field, int value) => WriteVarint(field, unchecked((ulong)(long)value));

    public void WriteBool(int field, bool value) => WriteVarint(field, value ? 1UL : 0UL);

    public void WriteFloat(int field, float value)
    {
        WriteTag(field, ProtoWire.Fixed32);
        BinaryPrimitives.WriteSingleLittleEndian(buffer.GetSpan(4), value);
        buffer.Advance(4);
    }

    public void WriteBytes(int field, ReadOnlySpan<byte> value)
    {
        WriteTag(field, ProtoWire.LengthDelimited);
        WriteRawVarint((ulong)value.Length);
        buffer.Write(value);
    }

    public void WriteString(int field, string value) => WriteBytes(field, Encoding.UTF8.GetBytes(value));

    public void WriteMessage(int field, ProtoWireWriter message) => WriteBytes(field, message.ToArray());

    public byte[] ToArray() => buffer.WrittenSpan.ToArray();

    private void WriteTag(int field, int wireType) => WriteRawVarint(((ulong)field << 3) | (uint)wireType);

    private void WriteRawVarint(ulong value)
    {
        while (value >= 0x80)
        {
            WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        WriteByte((byte)value);
    }

    private void WriteByte(byte value)
    {
        buffer.GetSpan(1)[0] = value;
        buffer.Advance(1);
    }
}
