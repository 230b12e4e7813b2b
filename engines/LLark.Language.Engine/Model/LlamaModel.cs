using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace LLark.Language.Engine.Model;

/// <summary>Token embeddings as a module whose parameter is named <c>embed_tokens.weight</c>.</summary>
internal sealed class Embedding : nn.Module
{
    private readonly Parameter weight;

    public Embedding(string name, long count, long dim, ScalarType dtype, Device device) : base(name)
    {
        weight = new Parameter(empty([count, dim], dtype: dtype, device: device), requires_grad: false);
        RegisterComponents();
    }

    public Tensor Weight => weight;

    public Tensor Forward(Tensor ids) => weight.index_select(0, ids.reshape(-1)).view([.. ids.shape, weight.shape[1]]);
}

/// <summary>The decoder stack: <c>model.embed_tokens</c>, <c>model.layers.N</c>, <c>model.norm</c>.</summary>
internal sealed class LlamaModel : nn.Module
{
    private readonly Embedding embed_tokens;
    private readonly nn.Module layers;
    private readonly RmsNorm norm;
    private readonly LlamaDecoderLayer[] blocks;

    public LlamaModel(string name, LlamaConfig config, ScalarType dtype, Device device) : base(name)
    {
        embed_tokens = new Embedding("embed_tokens", config.VocabSize, config.HiddenSize, dtype, device);
        blocks = Enumerable.Range(0, config.NumHiddenLayers)
            .Select(i => new LlamaDecoderLayer(i.ToString(System.Globalization.CultureInfo.InvariantCulture), i, config, dtype, device))
            .ToArray();
        layers = nn.ModuleList(blocks);
        norm = new RmsNorm("norm", config.HiddenSize, config.RmsNormEps, dtype, device);
        RegisterComponents();
    }

    public Embedding EmbedTokens => embed_tokens;

    internal IReadOnlyList<LlamaDecoderLayer> Blocks => blocks;

    internal RmsNorm Norm => norm;

    /// <summary>
    /// Runs every layer over x [b, t, hidden] as <paramref name="plan"/> places it and returns the final-normed
    /// hidden states. When <paramref name="hiddenStates"/> is given it receives the embeddings and each
    /// layer's output (before the final norm), for inspection.
    /// </summary>
    public Tensor Forward(Tensor x, RotaryEmbedding rope, AttentionPlan plan, List<Tensor>? hiddenStates = null)
    {
        using var scope = NewDisposeScope();
        hiddenStates?.Add(x.clone().MoveToOuterDisposeScope());
        Tensor h = x;
        foreach (LlamaDecoderLayer block in blocks)
        {
            h = block.Forward(h, rope, plan);
            hiddenStates?.Add(h.clone().MoveToOuterDisposeScope());
        }
        return norm.Forward(h).MoveToOuterDisposeScope();
    }
}
