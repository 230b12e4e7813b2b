using TorchSharp;

namespace LLark.Checkpoints;

/// <summary>
/// The one parser of the dtype names that options and flags take ("fp32", "bfloat16", "half", ...), and their short
/// names ("fp32", "fp16", "bf16", as in encoder ids). Each caller says which dtypes it runs in.
/// </summary>
public static class RunTimeDTypes
{
    /// <summary>The dtype <paramref name="name"/> names, when it is one of <paramref name="allowed"/>; null otherwise.</summary>
    public static torch.ScalarType? TryParse(string? name, params torch.ScalarType[] allowed)
    {
        ArgumentNullException.ThrowIfNull(allowed);
        torch.ScalarType? dtype = name?.Trim().ToLowerInvariant() switch
        {
            "fp32" or "float32" or "float" or "f32" => torch.ScalarType.Float32,
            "fp16" or "float16" or "half" or "f16" => torch.ScalarType.Float16,
            "bf16" or "bfloat16" => torch.ScalarType.BFloat16,
            _ => null,
        };
        return dtype is { } d && allowed.Contains(d) ? d : null;
    }

    /// <summary>As <see cref="TryParse"/>, throwing <see cref="ArgumentException"/> that lists the allowed names.</summary>
    public static torch.ScalarType Parse(string? name, params torch.ScalarType[] allowed) =>
        TryParse(name, allowed) ?? throw new ArgumentException($"unknown dtype '{name}' (expected {Expected(allowed)})", nameof(name));

    /// <summary>"fp32, fp16 or bf16" for the allowed set.</summary>
    public static string Expected(params torch.ScalarType[] allowed)
    {
        ArgumentNullException.ThrowIfNull(allowed);
        string[] names = [.. allowed.Select(ShortName)];
        return names.Length == 1 ? names[0] : string.Join(", ", names[..^1]) + " or " + names[^1];
    }

    public static string ShortName(torch.ScalarType dtype) => dtype switch
    {
        torch.ScalarType.Float32 => "fp32",
        torch.ScalarType.Float16 => "fp16",
        torch.ScalarType.BFloat16 => "bf16",
        _ => dtype.ToString().ToLowerInvariant(),
    };

    /// <summary>What the language engine runs in.</summary>
    public static readonly torch.ScalarType[] Language = [torch.ScalarType.Float32, torch.ScalarType.Float16, torch.ScalarType.BFloat16];

    /// <summary>What the Jukebox encoder's matrices run in (its convolutions and norms stay fp32).</summary>
    public static readonly torch.ScalarType[] Encoder = [torch.ScalarType.Float32, torch.ScalarType.BFloat16];
}
