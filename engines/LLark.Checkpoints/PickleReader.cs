using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace LLark.Checkpoints;

/// <summary>
/// What a pickle may construct. The reader itself only builds plain data; every class lookup, call and
/// persistent id goes through the host, which decides what is allowed. Nothing is ever executed.
/// </summary>
internal interface IPickleHost
{
    /// <summary>Resolves a GLOBAL; throws <see cref="CheckpointException"/> for anything not on the host's allow-list.</summary>
    object Global(string module, string name);

    /// <summary>Applies a resolved global to its arguments (REDUCE and NEWOBJ).</summary>
    object? Call(object callable, object?[] args);

    object? PersistentLoad(object? id);

    /// <summary>Applies BUILD state to an object the host made.</summary>
    void Build(object? target, object? state);
}

/// <summary>
/// A minimal unpickler for the opcodes torch.save emits (protocol 2, plus the protocol 3-4 forms of the same
/// values). Python values become .NET ones: None → null, bool, int → long (BigInteger if wider), float → double,
/// str → string, bytes → byte[], tuple → object?[], list → List&lt;object?&gt;, dict → OrderedDictionary&lt;object, object?&gt;.
/// </summary>
internal sealed class PickleReader(Stream stream, string source, IPickleHost host)
{
    private readonly List<object?> stack = [];
    private readonly Stack<int> marks = new();
    private readonly Dictionary<long, object?> memo = [];

    /// <summary>Runs one pickle up to its STOP and returns the object it built.</summary>
    public object? Load()
    {
        while (true)
        {
            long position = stream.Position;
            byte op = ReadByte();
            switch (op)
            {
                case 0x80: ReadByte(); break; // PROTO: the version changes no opcode this reader knows.
                case 0x95: ReadBytes(8); break; // FRAME: a length hint only.
                case (byte)'.': return Pop();
                case (byte)'(': marks.Push(stack.Count); break;
                case (byte)'0': Pop(); break;
                case (byte)'1': PopMark(); break;
                case (byte)'2': Push(Peek()); break;
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4))); break;
                case (byte)'K': Push((long)ReadByte()); break;
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2))); break;
                case 0x8a: Push(ReadLong(ReadByte())); break;
                case 0x8b: Push(ReadLong(ReadLength(4))); break;
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(ReadBytes(8))); break;
                case (byte)'X': Push(Encoding.UTF8.GetString(ReadBytes(ReadLength(4)))); break;
                case 0x8c: Push(Encoding.UTF8.GetString(ReadBytes(ReadByte()))); break;
                case 0x8d: Push(Encoding.UTF8.GetString(ReadBytes(ReadLength(8)))); break;
                case (byte)'T': Push(Encoding.Latin1.GetString(ReadBytes(ReadLength(4)))); break;
                case (byte)'U': Push(Encoding.Latin1.GetString(ReadBytes(ReadByte()))); break;
                case (byte)'B': Push(ReadBytes(ReadLength(4))); break;
                case (byte)'C': Push(ReadBytes(ReadByte())); break;
                case 0x8e: Push(ReadBytes(ReadLength(8))); break;
                case (byte)')': Push(Array.Empty<object?>()); break;
                case (byte)'t': Push(PopMark().ToArray()); break;
                case 0x85: Push(PopN(1)); break;
                case 0x86: Push(PopN(2)); break;
                case 0x87: Push(PopN(3)); break;
                case (byte)']': Push(new List<object?>()); break;
                case (byte)'l': Push(PopMark()); break;
                case (byte)'a': { var item = Pop(); As<List<object?>>(Peek(), op).Add(item); break; }
                case (byte)'e': { var items = PopMark(); As<List<object?>>(Peek(), op).AddRange(items); break; }
                case (byte)'}': Push(new OrderedDictionary<object, object?>()); break;
                case (byte)'d': { var dict = new OrderedDictionary<object, object?>(); SetItems(dict, PopMark()); Push(dict); break; }
                case (byte)'s': { var value = Pop(); var key = Pop(); SetItems(As<OrderedDictionary<object, object?>>(Peek(), op), [key, value]); break; }
                case (byte)'u': { var items = PopMark(); SetItems(As<OrderedDictionary<object, object?>>(Peek(), op), items); break; }
                case (byte)'q': memo[ReadByte()] = Peek(); break;
                case (byte)'r': memo[ReadUInt32()] = Peek(); break;
                case 0x94: memo[memo.Count] = Peek(); break;
                case (byte)'h': Push(GetMemo(ReadByte())); break;
                case (byte)'j': Push(GetMemo(ReadUInt32())); break;
                case (byte)'c': { string module = ReadLine(); Push(host.Global(module, ReadLine())); break; }
                case 0x93: { var name = Pop(); var module = Pop(); Push(host.Global(As<string>(module, op), As<string>(name, op))); break; }
                case (byte)'R': { var args = As<object?[]>(Pop(), op); Push(host.Call(As<object>(Pop(), op), args)); break; }
                case 0x81: { var args = As<object?[]>(Pop(), op); Push(host.Call(As<object>(Pop(), op), args)); break; }
                case (byte)'b': { var state = Pop(); host.Build(Peek(), state); break; }
                case (byte)'Q': Push(host.PersistentLoad(Pop())); break;
                default:
                    throw Fail($"opcode 0x{op:x2} at byte {position} is not one torch.save emits");
            }
        }
    }

    private void Push(object? value) => stack.Add(value);

    // As in Python's unpickler, a MARK starts a fresh stack: nothing below it can be popped until it is closed.
    private int Floor => marks.Count > 0 ? marks.Peek() : 0;

    private object? Peek() => stack.Count > Floor ? stack[^1] : throw Fail("stack underflow");

    private object? Pop()
    {
        var value = Peek();
        stack.RemoveAt(stack.Count - 1);
        return value;
    }

    private object?[] PopN(int count)
    {
        if (stack.Count < count + Floor)
            throw Fail("stack underflow");
        var items = stack.GetRange(stack.Count - count, count).ToArray();
        stack.RemoveRange(stack.Count - count, count);
        return items;
    }

    private List<object?> PopMark()
    {
        if (marks.Count == 0)
            throw Fail("an opcode needs a MARK that was never set");
        int start = marks.Pop();
        var items = stack.GetRange(start, stack.Count - start);
        stack.RemoveRange(start, stack.Count - start);
        return items;
    }

    private void SetItems(OrderedDictionary<object, object?> dict, List<object?> items)
    {
        if (items.Count % 2 != 0)
            throw Fail("a dict was given an odd number of keys and values");
        for (int i = 0; i < items.Count; i += 2)
            dict[items[i] ?? throw Fail("None as a dict key is not supported")] = items[i + 1];
    }

    private object? GetMemo(long index) => memo.TryGetValue(index, out var value) ? value : throw Fail($"memo slot {index} was never set");

    private T As<T>(object? value, byte op) =>
        value is T typed ? typed : throw Fail($"opcode 0x{op:x2} found {value?.GetType().Name ?? "None"} where it needs a {typeof(T).Name}");

    /// <summary>Python writes the shortest two's complement, so up to 8 bytes is exactly what fits a long.</summary>
    private object ReadLong(int length)
    {
        var bytes = ReadBytes(length);
        if (length > 8)
            return new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        long value = 0;
        for (int i = length - 1; i >= 0; i--)
            value = (value << 8) | bytes[i];
        int unused = 64 - 8 * length;
        return length == 0 ? 0L : (value << unused) >> unused;
    }

    private uint ReadUInt32() => BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4));

    private byte ReadByte()
    {
        int value = stream.ReadByte();
        return value >= 0 ? (byte)value : throw Fail("the pickle is truncated");
    }

    /// <summary>Reads an unsigned length and checks it against what is left, so corrupt lengths never allocate.</summary>
    private int ReadLength(int width)
    {
        var bytes = ReadBytes(width);
        ulong length = width == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(bytes) : BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        if (length > (ulong)(stream.Length - stream.Position))
            throw Fail($"a length of {length} runs past the end of the pickle");
        // A legacy file is one stream of pickles and data, so what is left may exceed what one array can hold.
        if (length > int.MaxValue)
            throw Fail($"a length of {length} is too large for a value in a state dict's pickle");
        return (int)length;
    }

    private byte[] ReadBytes(int count)
    {
        var bytes = new byte[count];
        CheckpointFiles.ReadExactly(stream, bytes, source, null);
        return bytes;
    }

    private string ReadLine()
    {
        var line = new StringBuilder();
        for (byte b = ReadByte(); b != (byte)'\n'; b = ReadByte())
        {
            if (line.Length > 256)
                throw Fail("a GLOBAL name is implausibly long");
            line.Append((char)b);
        }
        return line.ToString();
    }

    private CheckpointException Fail(string reason) => new($"{source}: malformed pickle: {reason}.");
}
