using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace LLark.Gateway;

/// <summary>A caller's key as the gateway holds it: the SHA-256 of the key, never the key.</summary>
public sealed record ApiKey(string Name, byte[] Sha256, KeyLimitOptions Limits)
{
    /// <summary>Validates one entry; <paramref name="where"/> names it in the error (<c>ApiKeys:0</c>, <c>keys.txt line 3</c>).</summary>
    public static ApiKey Create(string name, string sha256Hex, KeyLimitOptions limits, string where)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Any(char.IsWhiteSpace))
            throw new FormatException($"{where}: the key's name must be non-empty and contain no spaces");
        string hex = sha256Hex.Trim();
        if (hex.Length != 64 || !hex.All(char.IsAsciiHexDigit))
            throw new FormatException($"{where}: Sha256 of key '{name}' must be 64 hex digits (printf %s KEY | sha256sum)");
        return new ApiKey(name, Convert.FromHexString(hex), limits);
    }
}

/// <summary>The mounted-secret form: one <c>name:sha256hex</c> per line.</summary>
public static class ApiKeyFile
{
    public static IReadOnlyList<ApiKey> Parse(string path, KeyLimitOptions limits)
    {
        var keys = new List<ApiKey>();
        string[] lines = File.ReadAllLines(path);
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            string where = string.Create(CultureInfo.InvariantCulture, $"{path} line {i + 1}");
            int colon = line.LastIndexOf(':');
            if (colon < 0) throw new FormatException($"{where}: expected name:sha256hex");
            keys.Add(ApiKey.Create(line[..colon].Trim(), line[(colon + 1)..], limits, where));
        }
        return keys;
    }
}

/// <summary>Finds the caller's key from <c>authorization: Bearer KEY</c> or <c>x-api-key: KEY</c>, comparing hashes in constant time.</summary>
public sealed class ApiKeyStore(IOptions<GatewayOptions> options)
{
    public const string ApiKeyHeader = "x-api-key";

    private readonly IReadOnlyList<ApiKey> keys = options.Value.LoadKeys();

    public IReadOnlyList<ApiKey> Keys => keys;

    /// <summary>The key presented, or null with why: <c>missing</c> (none sent) or <c>unknown</c> (no key has that hash).</summary>
    public (ApiKey? Key, string? Failure) Authenticate(IHeaderDictionary headers)
    {
        string? presented = Presented(headers);
        if (string.IsNullOrEmpty(presented)) return (null, "missing");
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented), hash);
        ApiKey? match = null;
        // Every stored hash is compared, so the time taken says nothing about which key (or whether one) matched.
        foreach (ApiKey key in keys)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, key.Sha256)) match = key;
        }
        return match is null ? (null, "unknown") : (match, null);
    }

    private static string? Presented(IHeaderDictionary headers)
    {
        string? authorization = headers.Authorization;
        if (authorization is { Length: > 7 } && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return authorization[7..].Trim();
        string? header = headers[ApiKeyHeader];
        return header?.Trim();
    }
}
