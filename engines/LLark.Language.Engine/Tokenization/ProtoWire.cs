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
}
