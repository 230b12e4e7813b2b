using System.Globalization;
using System.Text.RegularExpressions;
using LLark.Language.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace LLark.Language.Engine.Multimodal;

/// <summary>
/// The projector's shape, as config.json's <c>mm_projector_type</c> names it in LLaVA's convention: "linear" (LLark's
/// own: one Linear per frame, <c>model.mm_projector.weight</c>) or "mlp{N}x_gelu" (LLaVA-1.5's: N Linears with a GELU
/// between each, held as an nn.Sequential, so <c>model.mm_projector.0.weight</c>, <c>.2.weight</c>, ...).
/// </summary>
internal sealed partial record ProjectorType
{
    public static readonly ProjectorType Linear = new("linear", 1);

    private ProjectorType(string name, int depth)
    {
        Name = name;
        Depth = depth;
    }

    /// <summary>The config value, as written back into config.json.</summary>
    public string Name { get; }

    /// <summary>How many Linear layers.</summary>
    public int Depth { get; }

    public bool IsSequential => Name != Linear.Name;

    /// <summary>Reads a config value; null (the key absent, as in LLark's own configs) is linear.</summary>
    public static ProjectorType Parse(string? name, string where)
    {
        if (name is null || name == Linear.Name) return Linear;
        Match m = MlpPattern().Match(name);
        if (m.Success && int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int depth) && depth is >= 1 and <= 8)
            return new ProjectorType(name, depth);
        throw new ModelConfigException($"{where}: mm_projector_type '{name}' is not 'linear' or 'mlp<N>x_gelu' with N from 1 to 8");
    }

    [GeneratedRegex("^mlp([0-9]+)x_gelu$")]
    private static partial Regex MlpPattern();
}

/// <summary>
/// LLark's projector: audio frames [F, width] to Llama embeddings [F, hidden], <c>model.mm_projector.*</c> in the
/// checkpoint; one Linear (LLark), or LLaVA-1.5's MLP when config.json asks for one.
/// </summary>
internal sealed class AudioProjector : nn.Module
{
    private readonly Parameter[] weights;
    private readonly Parameter[] biases;

    public AudioProjector(long audioWidth, long hidden, ScalarType dtype, Device device, ProjectorType? type = null) : base("mm_projector")
    {
        Type = type ?? ProjectorType.Linear;
        weights = new Parameter[Type.Depth];
        biases = new Parameter[Type.Depth];
        for (int i = 0; i < Type.Depth; i++)
        {
            weights[i] = new Parameter(empty([hidden, i == 0 ? audioWidth : hidden], dtype: dtype, device: device), requires_grad: false);
            biases[i] = new Parameter(empty(hidden, dtype: dtype, device: device), requires_grad: false);
            register_parameter($"weight{i}", weights[i]);
            register_parameter($"bias{i}", biases[i]);
        }
    }

    public ProjectorType Type { get; }

    /// <summary>The frame width the first layer takes.</summary>
    public int AudioWidth => (int)weights[0].shape[1];

    /// <summary>The first Linear, which reads the frames (what a standardising init rescales).</summary>
    public (Tensor Weight, Tensor Bias) Input => (weights[0], biases[0]);

    /// <summary>The Linear layers in order, with their checkpoint names.</summary>
    public IEnumerable<(string WeightName, Tensor Weight, string BiasName, Tensor Bias)> Layers()
    {
        for (int i = 0; i < Type.Depth; i++)
        {
            // nn.Sequential interleaves the GELUs, so the Linears sit at indices 0, 2, 4, ...
            string prefix = Type.IsSequential ? $"model.mm_projector.{2 * i}." : "model.mm_projector.";
            yield return (prefix + "weight", weights[i], prefix + "bias", biases[i]);
        }
    }

    /// <summary>Checkpoint names to tensors, in layer order, for strict loading beside the Llama weights.</summary>
    public Dictionary<string, Tensor> CheckpointParameters()
    {
        var named = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (weightName, weight, biasName, bias) in Layers())
        {
            named[weightName] = weight;
            named[biasName] = bias;
        }
        return named;
    }

    /// <summary>frames [F, width] (any float dtype) -> [F, hidden] in the model's dtype.</summary>
    public Tensor Forward(Tensor frames)
    {
        using var scope = NewDisposeScope();
        Tensor x = nn.functional.linear(frames.to(weights[0].dtype, weights[0].device), weights[0], biases[0]);
        for (int i = 1; i < Type.Depth; i++) x = nn.functional.linear(nn.functional.gelu(x), weights[i], biases[i]);
        return x.MoveToOuterDisposeScope();
    }
}
