using TorchSharp;
using static TorchSharp.torch;
using static LLark.Checkpoints.KeptScalars;

namespace LLark.Language.Engine.Model;

/// <summary>
/// Rotary position embeddings in the Hugging Face ("rotate_half") layout: element i of a head rotates with
/// element i + d/2 by angle pos * theta^(-2i/d). The tables are built once, in float32, for every position.
/// </summary>
/// <remarks>
/// rotate_half(x) = [-x2, x1] equals roll(x, d/2) multiplied by [-1.., +1..], so the signed sine table lets
/// a rotation cost one roll and two multiplies instead of two narrows, a negation and a concatenation.
/// </remarks>
internal sealed class RotaryEmbedding : IDisposable
{
    private readonly Tensor cos;        // [maxPos, d]
    private readonly Tensor signedSin;  // [maxPos, d], first half negated
    private readonly int headDim;

    public RotaryEmbedding(int headDim, int maxPositions, double theta, ScalarType dtype, Device device)
    {
        this.headDim = headDim;
        using var scope = NewDisposeScope();
        // Scalars kept alive through the calls (see KeptScalars); 1 / x is reciprocal(x), as the operator computes it.
        using Scalar dim = headDim.ToScalar(), step = 2L.ToScalar();
        Tensor exponents = arange(IntZero, dim, step, dtype: ScalarType.Int64).to(ScalarType.Float32).div(dim);
        Tensor invFreq = pow(theta, exponents).reciprocal();
        Tensor positions = LLark.Checkpoints.KeptScalars.Range(0, maxPositions).to(ScalarType.Float32);
        Tensor freqs = outer(positions, invFreq);                       // [maxPos, d/2]
        Tensor emb = cat([freqs, freqs], dim: -1);                      // [maxPos, d]
        cos = emb.cos().to(dtype, device).MoveToOuterDisposeScope();
        Tensor sin = freqs.sin();
        signedSin = cat([sin.neg(), sin], dim: -1).to(dtype, device).MoveToOuterDisposeScope();
    }

    public int MaxPositions => (int)cos.shape[0];

    /// <summary>cos(pos * f) for every position, [maxPos, d].</summary>
    internal Tensor CosTable => cos;

    /// <summary>sin(pos * f) with the first half negated, [maxPos, d].</summary>
    internal Tensor SignedSinTable => signedSin;

    /// <summary>The tables for positions [start, start + length), shaped [length, d] for broadcasting.</summary>
    public (Tensor Cos, Tensor SignedSin) Slice(long start, long length) =>
        (cos.narrow(0, start, length), signedSin.narrow(0, start, length));

    /// <summary>The tables at one position per row, shaped [n, 1, 1, d] to broadcast over [n, heads, 1, d].</summary>
    public (Tensor Cos, Tensor SignedSin) Gather(Tensor positions)
    {
        long n = positions.shape[0];
        return (cos.index_select(0, positions).view(n, 1, 1, headDim), signedSin.index_select(0, positions).view(n, 1, 1, headDim));
    }

    /// <summary>Rotates x [..., T, d] by the tables from <see cref="Slice"/>.</summary>
    public Tensor Apply(Tensor x, Tensor cosSlice, Tensor signedSinSlice)
    {
        using var scope = NewDisposeScope();
        Tensor rolled = x.roll(headDim / 2, -1);
        return x.mul(cosSlice).addcmul_(rolled, signedSinSlice, One).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        cos.Dispose();
        signedSin.Dispose();
    }
}
