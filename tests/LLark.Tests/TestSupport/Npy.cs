using System.Globalization;
using System.Text;

namespace LLark.Tests.TestSupport;

/// <summary>Reads the NumPy 1.0 `.npy` files of the fixtures (little-endian float32 or int64, C order).</summary>
internal static class Npy
{
    public static (float[] Data, long[] Shape) ReadFloat32(string path)
    {
        (byte[] bytes, int dataStart, long[] shape) = Read(path, "'<f4'");
        var data = new float[(bytes.Length - dataStart) / 4];
        Buffer.BlockCopy(bytes, dataStart, data, 0, data.Length * 4);
        return (data, shape);
    }

    public static (long[] Data, long[] Shape) ReadInt64(string path)
    {
        (byte[] bytes, int dataStart, long[] shape) = Read(path, "'<i8'");
        var data = new long[(bytes.Length - dataStart) / 8];
        Buffer.BlockCopy(bytes, dataStart, data, 0, data.Length * 8);
        return (data, shape);
    }

    private static (byte[] Bytes, int DataStart, long[] Shape) Read(string path, string descr)
    {
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
            throw new InvalidDataException($"{path}: not a .npy file");
        int headerLength = bytes[6] == 1 ? BitConverter.ToUInt16(bytes, 8) : (int)BitConverter.ToUInt32(bytes, 8);
        int headerStart = bytes[6] == 1 ? 10 : 12;
        string header = Encoding.ASCII.GetString(bytes, headerStart, headerLength);
        if (!header.Contains(descr, StringComparison.Ordinal) || header.Contains("'fortran_order': True", StringComparison.Ordinal))
            throw new InvalidDataException($"{path}: expected {descr} in C order, header {header}");
        int open = header.IndexOf('(', StringComparison.Ordinal), close = header.IndexOf(')', StringComparison.Ordinal);
        long[] shape = header[(open + 1)..close].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        return (bytes, headerStart + headerLength, shape);
    }
}
