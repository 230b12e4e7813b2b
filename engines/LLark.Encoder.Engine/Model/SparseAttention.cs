using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Encoder.Engine.Model;

/// <summary>
/// The top prior's three sparse causal attentions, computed block by block: no score matrix is ever larger than
/// [heads, block_ctx, block_ctx] per block (or per chunk of <see cref="QueryChunk"/> queries for the transposed
/// kind), so memory grows linearly with the sequence length. Lengths that are not a multiple of the block are
/// zero-padded; the masks keep padding away from real positions, as in Jukebox.
/// </summary>
internal static class SparseAttention
{
    /// <summary>Transposed-block queries per residue handled at once; bounds that kind's scores to [.., QueryChunk, blocks].</summary>
    internal const int QueryChunk = 64;

    /// <summary>The score of a masked key; a kept Scalar, as <see cref="LLark.Checkpoints.KeptScalars"/> explains.</summary>
    private static readonly Scalar Masked = (-1e9).ToScalar();

    /// <summary>q, k, v [N, T, heads·hd] to the attention output [N, T, heads·hd].</summary>
    public static Tensor Forward(AttentionKind kind, Tensor q, Tensor k, Tensor v, int heads, int blockCtx)
    {
        using var scope = NewDisposeScope();
        long n = q.shape[0], t = q.shape[1], width = q.shape[2];
        long blocks = (t + blockCtx - 1) / blockCtx;
        long padded = blocks * blockCtx;
        long headDim = width / heads;
        Tensor Blocked(Tensor x)
        {
            if (padded != t)
                x = nn.functional.pad(x, [0, 0, 0, padded - t]);
            // [N, blocks, block_ctx, heads, hd] -> [N, blocks, heads, block_ctx, hd]
            return x.view(n, blocks, blockCtx, heads, headDim).permute(0, 1, 3, 2, 4);
        }
        Tensor qb = Blocked(q), kb = Blocked(k), vb = Blocked(v);
        // Jukebox scales by (1/⁴√hd)², which is not always the double nearest 1/√hd.
        double root = 1.0 / Math.Sqrt(Math.Sqrt(headDim));
        using Scalar scale = (root * root).ToScalar(); // disposed after the calls, so alive through them (see KeptScalars)
        Tensor output = kind switch
        {
            AttentionKind.Block => BlockAttention(qb, kb, vb, scale, blockCtx),
            AttentionKind.TransposeBlock => TransposeBlockAttention(qb, kb, vb, scale),
            AttentionKind.PreviousBlock => PreviousBlockAttention(qb, kb, vb, scale),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
        };
        // [N, blocks, heads, block_ctx, hd] -> [N, T, heads·hd]
        output = output.permute(0, 1, 3, 2, 4).reshape(n, padded, width);
        if (padded != t)
            output = output.narrow(1, 0, t);
        return output.contiguous().MoveToOuterDisposeScope();
    }

    private static Tensor Softmax(Tensor scores, Tensor? allowed)
    {
        if (allowed is not null)
            scores = scores.masked_fill(allowed.logical_not(), Masked);
        return scores.softmax(-1);
    }

    /// <summary>Query i sees keys j ≤ i of its own block.</summary>
    private static Tensor BlockAttention(Tensor q, Tensor k, Tensor v, Scalar scale, int blockCtx)
    {
        using var scope = NewDisposeScope();
        Tensor scores = matmul(q, k.transpose(-1, -2)).mul_(scale);
        Tensor causal = ones(blockCtx, blockCtx, dtype: ScalarType.Bool, device: q.device).tril();
        return matmul(Softmax(scores, causal), v).MoveToOuterDisposeScope();
    }

    /// <summary>Query (block b, offset r) sees keys (b' ≤ b, r): a causal attention down each column of blocks.</summary>
    private static Tensor TransposeBlockAttention(Tensor q, Tensor k, Tensor v, Scalar scale)
    {
        using var scope = NewDisposeScope();
        long blocks = q.shape[1];
        // [N, blocks, heads, block_ctx, hd] -> [N, block_ctx, heads, blocks, hd]: one sequence per offset r.
        Tensor qt = q.permute(0, 3, 2, 1, 4), kt = k.permute(0, 3, 2, 1, 4), vt = v.permute(0, 3, 2, 1, 4);
        var parts = new List<Tensor>();
        for (long start = 0; start < blocks; start += QueryChunk)
        {
            long length = Math.Min(QueryChunk, blocks - start);
            long keys = start + length;
            Tensor qc = qt.narrow(3, start, length);
            Tensor kc = kt.narrow(3, 0, keys), vc = vt.narrow(3, 0, keys);
            Tensor scores = matmul(qc, kc.transpose(-1, -2)).mul_(scale);
            Tensor allowed = ones(length, keys, dtype: ScalarType.Bool, device: q.device).tril(start);
            parts.Add(matmul(Softmax(scores, allowed), vc));
        }
        Tensor output = parts.Count == 1 ? parts[0] : cat(parts, 3);
        return output.permute(0, 3, 2, 1, 4).MoveToOuterDisposeScope();
    }

    /// <summary>Queries of block b see all keys of block b − 1, unmasked; block 0 sees zeros, so its output is zero.</summary>
    private static Tensor PreviousBlockAttention(Tensor q, Tensor k, Tensor v, Scalar scale)
    {
        using var scope = NewDisposeScope();
        long blocks = q.shape[1];
        Tensor Previous(Tensor x) => nn.functional.pad(x.narrow(1, 0, blocks - 1), [0, 0, 0, 0, 0, 0, 1, 0]);
        Tensor scores = matmul(q, Previous(k).transpose(-1, -2)).mul_(scale);
        return matmul(Softmax(scores, null), Previous(v)).MoveToOuterDisposeScope();
    }
}
