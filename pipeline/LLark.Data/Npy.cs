using System.Globalization;
using System.Text;

namespace LLark.Data;

/// <summary>NumPy 1.0/2.0 <c>.npy</c> files: little-endian float32 or int64, C order.</summary>
public static class Npy
{
    public static (float[] Data, long[] Shape) ReadFloat32(string path)
    {
        (byte[] bytes, int dataStart, long[] shape) = Read(path, "'<f4'", 4);
        var data = new float[(bytes.Length - dataStart) / 4];
        Buffer.BlockCopy(bytes, dataStart, data, 0, data.Length * 4);
        return (data, shape);
    }

    public static (long[] Data, long[] Shape) ReadInt64(string path)
    {
        (byte[] bytes, int dataStart, long[] shape) = Read(path, "'<i8'", 8);
        var data = new long[(bytes.Length - dataStart) / 8];
        Buffer.BlockCopy(bytes, dataStart, data, 0, data.Length * 8);
        return (data, shape);
    }

    /// <summary>Writes atomically (a temporary file, then rename), so a crash never leaves a torn file behind.</summary>
    public static void WriteFloat32(string path, ReadOnlySpan<float> values, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long count = shape.Aggregate(1L, (a, d) => a * d);
        if (count != values.Length)
            throw new ArgumentException($"shape [{string.Join(", ", shape)}] holds {count} values, not {values.Length}", nameof(shape));
        string dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
        string header = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}";
        // Magic (6) + version (2) + length (2) + header + newline must be a multiple of 64.
        int total = (10 + header.Length + 1 + 63) / 64 * 64;
        header = header.PadRight(total - 10 - 1) + "\n";
        string temp = path + ".tmp";
        using (var file = File.Create(temp))
        {
            file.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
            file.Write(BitConverter.GetBytes((ushort)header.Length));
            file.Write(Encoding.ASCII.GetBytes(header));
            file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));
        }
        File.Move(temp, path, overwrite: true);
    }

    private static (byte[] Bytes, int DataStart, long[] Shape) Read(string path, string descr, int itemSize)
    {
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
            throw new InvalidDataException($"{path}: not a .npy file");
        int headerLength = bytes[6] == 1 ? BitConverter.ToUInt16(bytes, 8) : (int)BitConverter.ToUInt32(bytes, 8);
        int headerStart = bytes[6] == 1 ? 10 : 12;
        if (headerStart + headerLength > bytes.Length) throw new InvalidDataException($"{path}: truncated header");
        string header = Encoding.ASCII.GetString(bytes, headerStart, headerLength);
        if (!header.Contains(descr, StringComparison.Ordinal) || header.Contains("'fortran_order': True", StringComparison.Ordinal))
            throw new InvalidDataException($"{path}: expected {descr} in C order, header {header.Trim()}");
        int open = header.IndexOf('(', StringComparison.Ordinal), close = header.IndexOf(')', StringComparison.Ordinal);
        long[] shape = header[(open + 1)..close].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        long expected = shape.Aggregate(1L, (a, d) => a * d) * itemSize;
        if (bytes.Length - headerStart - headerLength != expected)
            throw new InvalidDataException($"{path}: {bytes.Length - headerStart - headerLength} data bytes, shape needs {expected}");
        return (bytes, headerStart + headerLength, shape);
    }
}
