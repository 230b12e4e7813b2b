using TorchSharp;
using static TorchSharp.torch;
using static LLark.Checkpoints.KeptScalars;

namespace LLark.Language.Engine.Model;

/// <summary>Pre-norm block: h = x + attn(norm(x)); out = h + mlp(norm(h)).</summary>
internal sealed class LlamaDecoderLayer : nn.Module
{
    private readonly LlamaAttention self_attn;
    private readonly LlamaMlp mlp;
    private readonly RmsNorm input_layernorm;
    private readonly RmsNorm post_attention_layernorm;
    private readonly int index;

    public LlamaDecoderLayer(string name, int index, LlamaConfig config, ScalarType dtype, Device device) : base(name)
    {
        this.index = index;
        self_attn = new LlamaAttention("self_attn", config, dtype, device);
        mlp = new LlamaMlp("mlp", config, dtype, device);
        input_layernorm = new RmsNorm("input_layernorm", config.HiddenSize, config.RmsNormEps, dtype, device);
        post_attention_layernorm = new RmsNorm("post_attention_layernorm", config.HiddenSize, config.RmsNormEps, dtype, device);
        RegisterComponents();
    }

    internal LlamaAttention Attention => self_attn;
    internal LlamaMlp Mlp => mlp;
    internal RmsNorm InputNorm => input_layernorm;
    internal RmsNorm PostAttentionNorm => post_attention_layernorm;

    public Tensor Forward(Tensor x, RotaryEmbedding rope, AttentionPlan plan)
    {
        using var scope = NewDisposeScope();
        Tensor h = x.add(self_attn.Forward(input_layernorm.Forward(x), rope, plan, index), One);
        Tensor m = mlp.Forward(post_attention_layernorm.Forward(h));
        // The norm keeps h for its backward, so training must not overwrite it.
        return (h.requires_grad ? h.add(m, One) : h.add_(m, One)).MoveToOuterDisposeScope();
    }
}
