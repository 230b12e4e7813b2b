using System.Buffers.Binary;
using CsCheck;

namespace LLark.Tests.Fuzz;

/// <summary>
/// One edit of a file's bytes. Positions are taken modulo the length at the time of the edit, so every edit applies to
/// every input, and a failing case reads as a recipe ("tone.mp3: truncate to 417") that a regression list can keep.
/// </summary>
internal abstract record Mutation
{
    public abstract byte[] Apply(byte[] bytes);

    protected static int At(int position, int length) => length == 0 ? 0 : (int)((uint)position % (uint)length);
}

internal sealed record FlipBit(int Position, int Bit) : Mutation
{
    public override byte[] Apply(byte[] bytes)
    {
        if (bytes.Length == 0) return bytes;
        byte[] copy = (byte[])bytes.Clone();
        copy[At(Position, copy.Length)] ^= (byte)(1 << (Bit & 7));
        return copy;
    }

    public override string ToString() => $"flip bit {Bit & 7} at {Position}";
}

/// <summary>A little-endian field of <see cref="Width"/> bytes (2 or 4) set to <see cref="Value"/>: a length, count or tag.</summary>
internal sealed record SetField(int Position, uint Value, int Width) : Mutation
{
    public override byte[] Apply(byte[] bytes)
    {
        if (bytes.Length < Width) return bytes;
        byte[] copy = (byte[])bytes.Clone();
        Span<byte> field = copy.AsSpan(At(Position, copy.Length - Width + 1), Width);
        if (Width == 2) BinaryPrimitives.WriteUInt16LittleEndian(field, (ushort)Value);
        else BinaryPrimitives.WriteUInt32LittleEndian(field, Value);
        return copy;
    }

    public override string ToString() => Width == 2 ? $"set u16 at {Position} to 0x{Value:x4}" : $"set u32 at {Position} to 0x{Value:x8}";
}

internal sealed record Truncate(int Length) : Mutation
{
    public override byte[] Apply(byte[] bytes) => bytes[..At(Length, bytes.Length + 1)];

    public override string ToString() => $"truncate to {Length}";
}

internal sealed record Delete(int Position, int Count) : Mutation
{
    public override byte[] Apply(byte[] bytes)
    {
        int at = At(Position, bytes.Length + 1), count = Math.Min(Count, bytes.Length - at);
        return [.. bytes.AsSpan(0, at), .. bytes.AsSpan(at + count)];
    }

    public override string ToString() => $"delete {Count} at {Position}";
}

internal sealed record Insert(int Position, byte[] Bytes) : Mutation
{
    public override byte[] Apply(byte[] bytes)
    {
        int at = At(Position, bytes.Length + 1);
        return [.. bytes.AsSpan(0, at), .. Bytes, .. bytes.AsSpan(at)];
    }

    public override string ToString() => $"insert {Convert.ToHexStringLower(Bytes)} at {Position}";
}

/// <summary>A seed file and the edits made to it.</summary>
internal sealed record MutatedInput(string Name, byte[] Original, Mutation[] Mutations)
{
    public byte[] Bytes => Mutations.Aggregate(Original, (bytes, m) => m.Apply(bytes));

    public override string ToString() => $"{Name}: {(Mutations.Length == 0 ? "as is" : string.Join("; ", Mutations))}";
}

internal static class MutationGen
{
    /// <summary>Values that break length and count fields: zero, one, the sign bit, all ones, and powers of two.</summary>
    private static readonly Gen<uint> FieldValue = Gen.Frequency(
        (3, Gen.OneOf(0u, 1u, 2u, 0x7FFF_FFFFu, 0x8000_0000u, 0xFFFF_FFFFu, 0xFFFF_FFFEu, 0x10000u, 0xFFFFu)),
        (2, Gen.Int[0, 31].Select(bit => 1u << bit)),
        (2, Gen.UInt));

    /// <summary>Edits of a file whose first <paramref name="header"/> bytes are its header, where most of them land.</summary>
    public static Gen<Mutation> Of(int header)
    {
        Gen<int> position = Gen.Frequency((3, Gen.Int[0, Math.Max(header - 1, 0)]), (1, Gen.Int[0, int.MaxValue]));
        return Gen.Frequency<Mutation>(
            (4, Gen.Select(position, Gen.Int[0, 7], (p, b) => (Mutation)new FlipBit(p, b))),
            (3, Gen.Select(position, FieldValue, (p, v) => (Mutation)new SetField(p, v, 4))),
            (2, Gen.Select(position, Gen.OneOf(FieldValue.Select(v => v & 0xFFFF), Gen.UShort.Select(v => (uint)v)), (p, v) => (Mutation)new SetField(p, v, 2))),
            (2, Gen.Int[0, int.MaxValue].Select(n => (Mutation)new Truncate(n))),
            (1, Gen.Select(position, Gen.Int[1, 64], (p, n) => (Mutation)new Delete(p, n))),
            (1, Gen.Select(position, Gen.Byte.Array[1, 16], (p, b) => (Mutation)new Insert(p, b))));
    }

    /// <summary>One to four edits of one of <paramref name="seeds"/>.</summary>
    public static Gen<MutatedInput> Inputs(IReadOnlyList<(string Name, byte[] Bytes, int Header)> seeds) =>
        Gen.Int[0, seeds.Count - 1].SelectMany(i => Of(seeds[i].Header).Array[1, 4]
            .Select(mutations => new MutatedInput(seeds[i].Name, seeds[i].Bytes, mutations)));
}
