using LLark.Encoder.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Tests.Encoder.Engine.Model;

/// <summary>The blockwise attentions equal a dense attention under each kind's full mask, at any length.</summary>
public sealed class SparseAttentionTests
{
    private const int Heads = 2, HeadDim = 3, BlockCtx = 8;

    /// <summary>Whether query i may see key j, from the README's definition of each kind.</summary>
    private static bool Allowed(AttentionKind kind, long i, long j) => kind switch
    {
        AttentionKind.Block => j <= i && j / BlockCtx == i / BlockCtx,
        AttentionKind.TransposeBlock => j <= i && j % BlockCtx == i % BlockCtx,
        AttentionKind.PreviousBlock => j / BlockCtx == i / BlockCtx - 1,
        _ => false,
    };

    private static Tensor Dense(AttentionKind kind, Tensor q, Tensor k, Tensor v)
    {
        long t = q.shape[1];
        var mask = new bool[t * t];
        for (long i = 0; i < t; i++)
            for (long j = 0; j < t; j++)
                mask[i * t + j] = Allowed(kind, i, j);
        Tensor allowed = tensor(mask, [t, t]);
        Tensor Split(Tensor x) => x.view(1, t, Heads, HeadDim).permute(0, 2, 1, 3);
        // Scalars held in locals: a temporary one can be finalized during the native call (see KeptScalars).
        using Scalar scale = Math.Sqrt(HeadDim).ToScalar(), masked = (-1e9).ToScalar();
        Tensor scores = matmul(Split(q), Split(k).transpose(-1, -2)).div(scale);
        Tensor w = scores.masked_fill(allowed.logical_not(), masked).softmax(-1);
        // Rows that see nothing (previous-block attention of block 0) attend to zeros: their output is 0.
        Tensor anyKey = allowed.any(-1).view(1, 1, t, 1);
        Tensor a = matmul(w, Split(v)).mul(anyKey);
        return a.permute(0, 2, 1, 3).reshape(1, t, Heads * HeadDim);
    }

    [Theory]
    [InlineData(AttentionKind.Block, 40)]
    [InlineData(AttentionKind.Block, 37)]
    [InlineData(AttentionKind.TransposeBlock, 40)]
    [InlineData(AttentionKind.TransposeBlock, 37)]
    [InlineData(AttentionKind.TransposeBlock, 8 * 150 + 3)]
    [InlineData(AttentionKind.PreviousBlock, 40)]
    [InlineData(AttentionKind.PreviousBlock, 37)]
    [InlineData(AttentionKind.PreviousBlock, 5)]
    public void BlockwiseEqualsDenseMasked(AttentionKind kind, int length)
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(7);
        Tensor q = randn(1, length, Heads * HeadDim, generator: generator);
        Tensor k = randn(1, length, Heads * HeadDim, generator: generator);
        Tensor v = randn(1, length, Heads * HeadDim, generator: generator);
        Tensor sparse = SparseAttention.Forward(kind, q, k, v, Heads, BlockCtx);
        Assert.True(JukeboxTiny.MaxAbsDiff(Dense(kind, q, k, v), sparse) < 1e-5);
    }
}
