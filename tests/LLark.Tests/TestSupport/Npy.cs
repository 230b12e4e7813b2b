using System.Globalization;
using System.Text;

namespace LLark.Tests.TestSupport;

/// <summary>Reads the NumPy 1.0 `.npy` files of the fixtures (little-endian float32, C order).</summary>
internal static class Npy
{
    public static (float[] Data, long[] Shape) ReadFloat32(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
            throw new InvalidDataException($"{path}: not a .npy file");
        int headerLength = bytes[6] == 1 ? BitConverter.ToUInt16(bytes, 8) : (int)BitConverter.ToUInt32(bytes, 8);
        int headerStart = bytes[6] == 1 ? 10 : 12;
        string header = Encoding.ASCII.GetString(bytes, headerStart, headerLength);
        if (!header.Contains("'<f4'", StringComparison.Ordinal) || header.Contains("'fortran_order': True", StringComparison.Ordinal))
            throw new InvalidDataException($"{path}: expected little-endian float32 in C order, header {header}");
        int open = header.IndexOf('(', StringComparison.Ordinal), close = header.IndexOf(')', StringComparison.Ordinal);
        long[] shape = header[(open + 1)..close].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        int dataStart = headerStart + headerLength;
        var data = new float[(bytes.Length - dataStart) / 4];
        Buffer.BlockCopy(bytes, dataStart, data, 0, data.Length * 4);
        return (data, shape);
    }
}
