using System.Buffers.Binary;
using System.IO.Compression;

namespace LLark.Tests.Evaluation;

/// <summary>A strict little PNG reader for tests: checks the signature and every chunk's CRC, and unfilters 8-bit RGB(A).</summary>
internal sealed class PngFile
{
    private static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];

    public int Width { get; private init; }

    public int Height { get; private init; }

    public int ColorType { get; private init; }

    /// <summary>Pixels as 0xRRGGBBAA, row-major.</summary>
    public uint[] Pixels { get; private init; } = [];

    public static PngFile Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        Assert.True(bytes.AsSpan(0, 8).SequenceEqual(Signature), "PNG signature");
        int at = 8, width = 0, height = 0, depth = 0, colorType = 0;
        using var idat = new MemoryStream();
        bool sawEnd = false;
        while (at < bytes.Length)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(at));
            string type = System.Text.Encoding.ASCII.GetString(bytes, at + 4, 4);
            ReadOnlySpan<byte> typeAndData = bytes.AsSpan(at + 4, 4 + length);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(at + 8 + length));
            Assert.True(Crc32(typeAndData) == crc, $"CRC of chunk {type}");
            ReadOnlySpan<byte> data = typeAndData[4..];
            if (type == "IHDR")
            {
                width = BinaryPrimitives.ReadInt32BigEndian(data);
                height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                depth = data[8];
                colorType = data[9];
                Assert.Equal(0, data[12]);
            }
            else if (type == "IDAT") idat.Write(data);
            else if (type == "IEND") sawEnd = true;
            at += 12 + length;
        }
        Assert.True(sawEnd, "IEND chunk");
        Assert.Equal(8, depth);
        int channels = colorType switch { 6 => 4, 2 => 3, _ => throw new InvalidDataException($"color type {colorType}") };
        idat.Position = 0;
        using var inflated = new MemoryStream();
        using (var z = new ZLibStream(idat, CompressionMode.Decompress)) z.CopyTo(inflated);
        byte[] raw = inflated.ToArray();
        int stride = width * channels;
        Assert.Equal(height * (stride + 1), raw.Length);
        var current = new byte[stride];
        var previous = new byte[stride];
        var pixels = new uint[width * height];
        for (int y = 0; y < height; y++)
        {
            int filter = raw[y * (stride + 1)];
            for (int i = 0; i < stride; i++)
            {
                int x = raw[y * (stride + 1) + 1 + i];
                int a = i >= channels ? current[i - channels] : 0, b = previous[i], c = i >= channels ? previous[i - channels] : 0;
                current[i] = (byte)(filter switch
                {
                    0 => x,
                    1 => x + a,
                    2 => x + b,
                    3 => x + (a + b) / 2,
                    4 => x + Paeth(a, b, c),
                    _ => throw new InvalidDataException($"filter {filter}"),
                });
            }
            for (int p = 0; p < width; p++)
            {
                int o = p * channels;
                pixels[y * width + p] = (uint)(current[o] << 24 | current[o + 1] << 16 | current[o + 2] << 8 | (channels == 4 ? current[o + 3] : 255));
            }
            (previous, current) = (current, previous);
        }
        return new PngFile { Width = width, Height = height, ColorType = colorType, Pixels = pixels };
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte d in data)
        {
            crc ^= d;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>Pixels not of the most common colour (the background).</summary>
    public int DrawnPixels()
    {
        uint background = Pixels.GroupBy(p => p).OrderByDescending(g => g.Count()).First().Key;
        return Pixels.Count(p => p != background);
    }

    public int CountColour(Func<byte, byte, byte, bool> match) =>
        Pixels.Count(p => match((byte)(p >> 24), (byte)(p >> 16), (byte)(p >> 8)));
}
