using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace LLark.Language.Engine.Serving;

/// <summary>
/// What one prompt position holds, as the prefix cache matches it: a text token by its id (<see cref="Content"/>
/// zero), or frame <see cref="Index"/> of an audio clip by the clip's content digest. Two positions with equal values
/// get equal embeddings under one model, which is what makes their keys and values interchangeable.
/// </summary>
public readonly record struct PromptPosition(UInt128 Content, int Index)
{
    public static PromptPosition Text(int tokenId) => new(UInt128.Zero, tokenId);

    public static PromptPosition Audio(UInt128 clip, int frame) =>
        clip == UInt128.Zero ? throw new ArgumentException("a clip digest of zero would read as text", nameof(clip)) : new(clip, frame);
}

/// <summary>
/// A prompt's identity for the prefix cache: the scope (the model and the template that rendered it) and what each
/// position holds. Cached state is served only to a prompt of the same scope whose positions start with the same values.
/// </summary>
public sealed class PromptKey
{
    public PromptKey(UInt128 scope, IReadOnlyList<PromptPosition> positions)
    {
        ArgumentNullException.ThrowIfNull(positions);
        Scope = scope;
        Positions = positions;
    }

    public UInt128 Scope { get; }

    public IReadOnlyList<PromptPosition> Positions { get; }

    /// <summary>The scope of prompts that model <paramref name="modelIdentity"/> runs, rendered by template <paramref name="templateId"/>.</summary>
    public static UInt128 ScopeOf(string modelIdentity, string templateId) => Digest("llark-prefix-scope", modelIdentity, templateId);

    /// <summary>The positions of a text-only prompt.</summary>
    public static PromptKey ForText(UInt128 scope, IEnumerable<int> tokenIds) => new(scope, [.. tokenIds.Select(PromptPosition.Text)]);

    /// <summary>This prompt followed by the text tokens <paramref name="tokenIds"/> (an answer being generated).</summary>
    public PromptKey Then(IReadOnlyList<int> tokenIds)
    {
        if (tokenIds.Count == 0) return this;
        var positions = new PromptPosition[Positions.Count + tokenIds.Count];
        for (int i = 0; i < Positions.Count; i++) positions[i] = Positions[i];
        for (int i = 0; i < tokenIds.Count; i++) positions[Positions.Count + i] = PromptPosition.Text(tokenIds[i]);
        return new PromptKey(Scope, positions);
    }

    /// <summary>How many leading positions of <paramref name="a"/> equal those of <paramref name="b"/> from <paramref name="bStart"/>, at most <paramref name="most"/>.</summary>
    internal static int Shared(IReadOnlyList<PromptPosition> a, IReadOnlyList<PromptPosition> b, int bStart, int most)
    {
        int n = 0;
        while (n < most && a[n] == b[bStart + n]) n++;
        return n;
    }

    /// <summary>
    /// A 128-bit digest of <paramref name="parts"/> (SHA-256, truncated), each part length-prefixed so that no two
    /// lists of parts share a digest by where the boundaries fall. Never zero.
    /// </summary>
    public static UInt128 Digest(params string[] parts)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> length = stackalloc byte[4];
        foreach (string part in parts)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(part);
            BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
            hash.AppendData(length);
            hash.AppendData(bytes);
        }
        return Truncate(hash.GetHashAndReset());
    }

    /// <summary>The first 128 bits of a SHA-256 <paramref name="sha256"/>, zero mapped to one (zero marks text).</summary>
    public static UInt128 Truncate(ReadOnlySpan<byte> sha256)
    {
        var digest = new UInt128(BinaryPrimitives.ReadUInt64LittleEndian(sha256), BinaryPrimitives.ReadUInt64LittleEndian(sha256[8..]));
        return digest == UInt128.Zero ? UInt128.One : digest;
    }
}
