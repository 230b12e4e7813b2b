using System.Buffers.Binary;
using System.Text;

namespace LLark.Tests.Checkpoints;

/// <summary>
/// Writes protocol-2 pickles opcode by opcode, so tests can build the pickles torch.save emits and the hostile or
/// broken ones it never would. Each method appends one construct; <see cref="Stop"/> ends the pickle.
/// </summary>
internal sealed class PickleWriter
{
    private readonly List<byte> bytes = [0x80, 0x02];

    public PickleWriter Op(params byte[] ops)
    {
        bytes.AddRange(ops);
        return this;
    }

    public PickleWriter Op(char op, params byte[] operands) => Op((byte)op).Op(operands);

    public PickleWriter Mark() => Op('(');

    public PickleWriter None() => Op('N');

    public PickleWriter False() => Op(0x89);

    public PickleWriter EmptyDict() => Op('}');

    public PickleWriter EmptyList() => Op(']');

    public PickleWriter EmptyTuple() => Op(')');

    public PickleWriter Tuple() => Op('t');

    public PickleWriter SetItems() => Op('u');

    public PickleWriter Reduce() => Op('R');

    public PickleWriter Str(string value)
    {
        var utf8 = Encoding.UTF8.GetBytes(value);
        Op('X');
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, utf8.Length);
        bytes.AddRange(length.ToArray());
        bytes.AddRange(utf8);
        return this;
    }

    public PickleWriter Int(long value)
    {
        if (value is >= int.MinValue and <= int.MaxValue)
        {
            Op('J');
            Span<byte> four = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(four, (int)value);
            bytes.AddRange(four.ToArray());
            return this;
        }
        Span<byte> eight = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(eight, value);
        return Op(0x8a, 8).Op(eight.ToArray());
    }

    /// <summary>The text GLOBAL opcode: <c>c module\nname\n</c>.</summary>
    public PickleWriter Global(string module, string name) =>
        Op('c').Op(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));

    /// <summary>The protocol-4 STACK_GLOBAL opcode, with its two strings pushed first.</summary>
    public PickleWriter StackGlobal(string module, string name) => Str(module).Str(name).Op(0x93);

    public PickleWriter Ints(IEnumerable<long> values)
    {
        Mark();
        foreach (long value in values)
            Int(value);
        return Tuple();
    }

    /// <summary>
    /// A tensor as torch.save pickles it: <c>_rebuild_tensor_v2(persistent storage id, offset, size, stride,
    /// False, OrderedDict())</c>. <paramref name="legacy"/> adds the sixth (view_metadata) item of legacy ids.
    /// </summary>
    public PickleWriter Tensor(string storageClass, string key, long numel, long offset, long[] shape, long[] stride, bool legacy = false)
    {
        Global("torch._utils", "_rebuild_tensor_v2").Mark();
        Mark().Str("storage").Global("torch", storageClass).Str(key).Str("cpu").Int(numel);
        if (legacy)
            None();
        Tuple().Op('Q');
        Int(offset).Ints(shape).Ints(stride).False().Global("collections", "OrderedDict").EmptyTuple().Reduce();
        return Tuple().Reduce();
    }

    public byte[] Stop() => [.. bytes, (byte)'.'];

    /// <summary>A state dict of contiguous float32 tensors, one storage each, keyed "0", "1", ...</summary>
    public static byte[] FloatStateDict(params (string Name, long[] Shape)[] tensors)
    {
        var pickle = new PickleWriter().EmptyDict().Mark();
        for (int i = 0; i < tensors.Length; i++)
        {
            var (name, shape) = tensors[i];
            long numel = shape.Aggregate(1L, (a, b) => a * b);
            pickle.Str(name).Tensor("FloatStorage", i.ToString(System.Globalization.CultureInfo.InvariantCulture), numel, 0, shape, ContiguousStride(shape));
        }
        return pickle.SetItems().Stop();
    }

    /// <summary>The first pickle of every legacy file: torch's magic number 0x1950a86a20f9469cfc6c as a LONG1.</summary>
    public static byte[] LegacyMagic => [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e];

    /// <summary>
    /// A legacy (pre-1.6) torch.save file: magic number, protocol version 1001, sys_info, the object pickle, the
    /// list of storage keys, then each storage as an int64 element count and its data.
    /// </summary>
    public static byte[] LegacyFile(byte[] objectPickle, IEnumerable<(string Key, long Count, byte[] Data)> storages,
        bool littleEndian = true, long protocol = 1001)
    {
        var list = storages.ToList();
        var sysInfo = new PickleWriter().EmptyDict().Mark().Str("protocol_version").Int(1001)
            .Str("little_endian").Op(littleEndian ? (byte)0x88 : (byte)0x89).SetItems().Stop();
        var keys = new PickleWriter().EmptyList().Mark();
        foreach (var (key, _, _) in list)
            keys.Str(key);
        var result = new List<byte>(LegacyMagic);
        result.AddRange(new PickleWriter().Int(protocol).Stop());
        result.AddRange(sysInfo);
        result.AddRange(objectPickle);
        result.AddRange(keys.Op('e').Stop());
        foreach (var (_, count, data) in list)
        {
            result.AddRange(BitConverter.GetBytes(count));
            result.AddRange(data);
        }
        return [.. result];
    }

    public static long[] ContiguousStride(long[] shape)
    {
        var stride = new long[shape.Length];
        long step = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            stride[i] = step;
            step *= shape[i];
        }
        return stride;
    }
}
