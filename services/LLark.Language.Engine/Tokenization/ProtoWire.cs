using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace LLark.Language.Engine.Tokenization;

/// <summary>
/// The few pieces of the protobuf wire format that a SentencePiece model file needs. Hand-written so the
/// tokenizer depends on no protobuf runtime and on no generated code for sentencepiece_model.proto.
/// </summary>
internal static class ProtoWire
{
    public const int Varint = 0;
    public const int Fixed64 = 1;
    public const int LengthDelimited = 2;
    public const int Fixed32 = 5;

    /// <summary>A forward-only reader over one message's bytes.</summary>
    public ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> data = data;
        private int position;

        public readonly bool AtEnd => position >= data.Length;

        public (int Field, int WireType) ReadTag()
        {
            ulong tag = ReadVarint();
            int field = checked((int)(tag >> 3));
            if (field == 0) throw new InvalidDataException("protobuf field number 0 is invalid");
            return (field, (int)(tag & 7));
        }

        public ulong ReadVarint()
        {
            ulong result = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (position >= data.Length) throw new InvalidDataException("protobuf varint runs past the end");
                byte b = data[position++];
                result |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return result;
            }
            throw new InvalidDataException("protobuf varint is longer than 10 bytes");
        }

        /// <summary>An int32 field: negative values travel as 10-byte sign-extended varints.</summary>
        public int ReadInt32() => unchecked((int)ReadVarint());

        public bool ReadBool() => ReadVarint() != 0;

        public float ReadFloat()
        {
            if (data.Length - position < 4) throw new InvalidDataException("protobuf fixed32 runs past the end");
            float value = BinaryPrimitives.ReadSingleLittleEndian(data[position..]);
            position += 4;
            return value;
        }

        public ReadOnlySpan<byte> ReadBytes()
        {
            ulong length = ReadVarint();
            if (length > (ulong)(data.Length - position))
                throw new InvalidDataException("protobuf length-delimited field runs past the end");
            ReadOnlySpan<byte> bytes = data.Slice(position, (int)length);
            position += (int)length;
            return bytes;
        }

        public string ReadString() => Encoding.UTF8.GetString(ReadBytes());

        public void Skip(int wireType)
        {
            switch (wireType)
            {
                case Varint: ReadVarint(); break;
                case Fixed64: Advance(8); break;
                case LengthDelimited: ReadBytes(); break;
                case Fixed32: Advance(4); break;
                default: throw new InvalidDataException($"unsupported protobuf wire type {wireType}");
            }
        }

        private void Advance(int count)
        {
            if (data.Length - position < count) throw new InvalidDataException("protobuf field runs past the end");
            position += count;
        }
    }

    /// <summary>Appends fields to a growing buffer; nested messages are written into their own writer first.</summary>
    public sealed class Writer
    {
        private readonly ArrayBufferWriter<byte> buffer = new();

        public void WriteVarint(int field, ulong value)
        {
            WriteTag(field, Varint);
            WriteRawVarint(value);
        }

        /// <summary>Sign-extends like protobuf's int32, so -1 takes ten bytes as in files SentencePiece writes.</summary>
        public void WriteInt32(int field, int value) => WriteVarint(field, unchecked((ulong)(long)value));

        public void WriteBool(int field, bool value) => WriteVarint(field, value ? 1UL : 0UL);

        public void WriteFloat(int field, float value)
        {
            WriteTag(field, Fixed32);
            BinaryPrimitives.WriteSingleLittleEndian(buffer.GetSpan(4), value);
            buffer.Advance(4);
        }

        public void WriteBytes(int field, ReadOnlySpan<byte> value)
        {
            WriteTag(field, LengthDelimited);
            WriteRawVarint((ulong)value.Length);
            buffer.Write(value);
        }

        public void WriteString(int field, string value) => WriteBytes(field, Encoding.UTF8.GetBytes(value));

        public void WriteMessage(int field, Writer message) => WriteBytes(field, message.ToArray());

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
}
