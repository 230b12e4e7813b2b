using System.Globalization;

namespace LLark.Tests.Deploy;

/// <summary>Kubernetes resource quantities ("512Mi", "12Gi", "500m", "2") as numbers.</summary>
internal static class Quantity
{
    private static readonly (string Suffix, double Factor)[] Suffixes =
    [
        ("Ki", 1L << 10), ("Mi", 1L << 20), ("Gi", 1L << 30), ("Ti", 1L << 40),
        ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("m", 1e-3),
    ];

    public static double Parse(string text)
    {
        foreach ((string suffix, double factor) in Suffixes)
        {
            if (text.EndsWith(suffix, StringComparison.Ordinal))
                return double.Parse(text[..^suffix.Length], CultureInfo.InvariantCulture) * factor;
        }
        return double.Parse(text, CultureInfo.InvariantCulture);
    }

    /// <summary>Redis's own sizes ("256mb", "12gb": 1024-based, as Redis reads them).</summary>
    public static double ParseRedis(string text)
    {
        string lower = text.ToLowerInvariant();
        foreach ((string suffix, double factor) in new[] { ("kb", 1024d), ("mb", 1024d * 1024), ("gb", 1024d * 1024 * 1024) })
        {
            if (lower.EndsWith(suffix, StringComparison.Ordinal)) return double.Parse(lower[..^2], CultureInfo.InvariantCulture) * factor;
        }
        return double.Parse(lower, CultureInfo.InvariantCulture);
    }
}
