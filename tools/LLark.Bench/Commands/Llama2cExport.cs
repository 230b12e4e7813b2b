using LLark.Language.Engine.Model;
using static TorchSharp.torch;

namespace LLark.Bench.Commands;

/// <summary>
/// Writes a model as a llama2.c legacy (v0) checkpoint, the file <c>run.c</c> memory-maps, so a benchmark can
/// run the very same weights through llama2.c. Header: seven int32 (dim, hidden_dim, n_layers, n_heads,
/// n_kv_heads, vocab_size, seq_len), vocab_size negated when the classifier is not the embedding; then float32
/// arrays in the order run.c's memory_map_weights reads them.
/// </summary>
/// <remarks>
/// Hugging Face Llama rotates element i of a head with element i + d/2 ("rotate_half"); run.c rotates pairs
/// (2i, 2i + 1). The q and k rows are un-permuted (w.view(n, 2, d/2, in).transpose(1, 2)) so the exported model
/// computes the same function. run.c fixes rms eps at 1e-5 and the RoPE base at 10000.
/// </remarks>
internal static class Llama2cExport
{
    public static void Write(LlamaForCausalLM model, string path)
    {
        LlamaConfig c = model.Config;
        if (c.RopeTheta != 10000 || c.RopeScaling is not null)
            throw new ArgumentException($"run.c hard-codes RoPE base 10000 without scaling; this model has {c.RopeTheta}");
        if (Math.Abs(c.RmsNormEps - 1e-5) > 1e-12)
            throw new ArgumentException($"run.c hard-codes rms_norm_eps 1e-5; this model has {c.RmsNormEps}");
        if (c.AttentionBias || c.MlpBias || c.HiddenAct != "silu")
            throw new ArgumentException("run.c has no biases and only SiLU");

        IReadOnlyDictionary<string, Tensor> p = model.CheckpointParameters();
        bool shared = !p.ContainsKey("lm_head.weight");
        int layers = c.NumHiddenLayers, headDim = c.HeadDim;
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        using var writer = new BinaryWriter(file);
        foreach (int v in (int[])[c.HiddenSize, c.IntermediateSize, layers, c.NumAttentionHeads, c.KeyValueHeads,
                     shared ? c.VocabSize : -c.VocabSize, c.MaxPositionEmbeddings])
            writer.Write(v);

        void Put(Tensor t)
        {
            using var scope = NewDisposeScope();
            Tensor f = t.to(ScalarType.Float32, CPU).contiguous();
            writer.Write(f.bytes);
        }
        void PerLayer(string suffix, int ropeHeads = 0)
        {
            for (int i = 0; i < layers; i++)
            {
                using var scope = NewDisposeScope();
                Tensor w = p[$"model.layers.{i}.{suffix}"];
                if (ropeHeads > 0)
                    w = w.view(ropeHeads, 2, headDim / 2, w.shape[1]).transpose(1, 2).reshape(w.shape[0], w.shape[1]);
                Put(w);
            }
        }

        Put(p["model.embed_tokens.weight"]);
        PerLayer("input_layernorm.weight");
        PerLayer("self_attn.q_proj.weight", c.NumAttentionHeads);
        PerLayer("self_attn.k_proj.weight", c.KeyValueHeads);
        PerLayer("self_attn.v_proj.weight");
        PerLayer("self_attn.o_proj.weight");
        PerLayer("post_attention_layernorm.weight");
        PerLayer("mlp.gate_proj.weight");
        PerLayer("mlp.down_proj.weight");
        PerLayer("mlp.up_proj.weight");
        Put(p["model.norm.weight"]);
        // What used to be freq_cis_real and freq_cis_imag: run.c skips them, computing RoPE itself.
        writer.Write(new byte[(long)c.MaxPositionEmbeddings * headDim * sizeof(float)]);
        if (!shared) Put(p["lm_head.weight"]);
    }
}
