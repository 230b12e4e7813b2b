using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;
using static LLark.Checkpoints.KeptScalars;

namespace LLark.Encoder.Engine.Model;

/// <summary>
/// The part of the top prior the embedding needs: the label conditioner (<c>y_emb.*</c>), the code and position
/// embeddings (<c>prior.x_emb</c>, <c>prior.pos_emb</c>) and the first <see cref="JukeboxEncoderConfig.Layers"/>
/// transformer blocks. No output head, no final norm: the embedding is the raw residual stream.
/// </summary>
internal sealed class PriorPrefix : nn.Module
{
    private readonly Table genreEmb;
    private readonly Table artistEmb;
    private readonly Table totalLengthEmb;
    private readonly Table absolutePosEmb;
    private readonly Table relativePosEmb;
    private readonly Table xEmb;
    private readonly Table posEmb;
    private readonly PriorBlock[] blocks;

    public PriorPrefix(JukeboxEncoderConfig config, ScalarType matrixType, Device device) : base("prior_level_2")
    {
        Config = config;
        PriorConfig prior = config.Prior;
        int width = prior.Width;
        Children Embedding(string name, Table table) => new(name, [("emb", table)]);
        genreEmb = new Table("emb", "weight", prior.GenreBins, width, device);
        artistEmb = new Table("emb", "weight", prior.ArtistBins, width, device);
        totalLengthEmb = new Table("emb", "weight", prior.TBins, width, device);
        absolutePosEmb = new Table("emb", "weight", prior.TBins, width, device);
        relativePosEmb = new Table("emb", "weight", prior.TBins, width, device);
        register_module("y_emb", new Children("y_emb",
        [
            ("bow_genre_emb", Embedding("bow_genre_emb", genreEmb)),
            ("artist_emb", Embedding("artist_emb", artistEmb)),
            ("total_length_emb", Embedding("total_length_emb", totalLengthEmb)),
            ("absolute_pos_emb", Embedding("absolute_pos_emb", absolutePosEmb)),
            ("relative_pos_emb", Embedding("relative_pos_emb", relativePosEmb)),
        ]));

        xEmb = new Table("x_emb", "weight", config.Vqvae.CodebookSize, width, device);
        posEmb = new Table("pos_emb", "pos_emb", prior.NCtx, width, device);
        blocks = Enumerable.Range(0, config.Layers)
            .Select(i => new PriorBlock(i.ToString(CultureInfo.InvariantCulture), i, prior, matrixType, device))
            .ToArray();
        var transformer = new Children("transformer", [("_attn_mods", new Children("_attn_mods", blocks.Select(b => (b.GetName(), (nn.Module)b))))]);
        register_module("prior", new Children("prior", [("x_emb", xEmb), ("pos_emb", posEmb), ("transformer", transformer)]));
    }

    public JukeboxEncoderConfig Config { get; }

    internal IReadOnlyList<PriorBlock> Blocks => blocks;

    /// <summary>
    /// The start embedding [1, 1, width] (artist plus the masked sum of genres) and the time conditioning
    /// [1, length, width] of the first <paramref name="length"/> positions.
    /// </summary>
    public (Tensor YCond, Tensor XCond) Conditioning(ConditioningLabels labels, int length)
    {
        using var scope = NewDisposeScope();
        PriorConfig prior = Config.Prior;
        ConditioningBins bins = ConditioningMath.Bins(prior, labels, Config.ContextSamples, prior.NCtx);
        Device device = xEmb.Weight.device;
        Tensor Ids(int[] ids) => tensor(ids.Select(i => (long)i).ToArray(), dtype: ScalarType.Int64, device: device);

        Tensor mask = tensor(bins.GenreMask.Select(m => m ? 1f : 0f).ToArray(), device: device).unsqueeze(-1);
        Tensor genre = genreEmb.Lookup(Ids(bins.GenreIds)).mul(mask).sum(0, keepdim: true);
        Tensor yCond = genre.add(artistEmb.Lookup(Ids([bins.ArtistId])), One).view(1, 1, prior.Width);

        Tensor total = totalLengthEmb.Lookup(Ids([bins.TotalLength]));
        Tensor absolute = absolutePosEmb.Lookup(Ids(bins.AbsolutePosition[..length]));
        Tensor relative = relativePosEmb.Lookup(Ids(bins.RelativePosition[..length]));
        Tensor xCond = total.add(absolute, One).add_(relative, One).unsqueeze(0);
        return (yCond.MoveToOuterDisposeScope(), xCond.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Input of the first block: codes shifted right by one (the last code is never embedded), the start
    /// embedding in slot 0, plus the position embedding and the time conditioning. codes int64 [1, T].
    /// </summary>
    public Tensor Input(Tensor codes, Tensor yCond, Tensor xCond)
    {
        using var scope = NewDisposeScope();
        long n = codes.shape[0], t = codes.shape[1];
        if (t > Config.Prior.NCtx)
            throw new ArgumentException($"{t} codes exceed the prior's context of {Config.Prior.NCtx}", nameof(codes));
        Tensor shifted = xEmb.Lookup(codes.narrow(1, 0, t - 1));
        Tensor h = cat([yCond.expand(n, 1, -1), shifted], 1);
        h = h.add(posEmb.Weight.narrow(0, 0, t).unsqueeze(0), One).add_(xCond.narrow(1, 0, t), One);
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Runs the blocks over h [N, T, width]. <paramref name="afterBlock"/>, when given, sees each block's output
    /// (1-based block number, tensor valid only during the call).
    /// </summary>
    public Tensor Forward(Tensor h, Action<int, Tensor>? afterBlock = null, CancellationToken ct = default)
    {
        using var scope = NewDisposeScope();
        Tensor x = h;
        for (int i = 0; i < blocks.Length; i++)
        {
            ct.ThrowIfCancellationRequested();
            Tensor next;
            using (NewDisposeScope())
            {
                next = blocks[i].Forward(x);
                afterBlock?.Invoke(i + 1, next);
                next.MoveToOuterDisposeScope();
            }
            // Only the current residual stream stays alive: 36 of them would be 5.6 GB at full size.
            if (!ReferenceEquals(x, h))
                x.Dispose();
            x = next;
        }
        return ReferenceEquals(x, h) ? x.alias().MoveToOuterDisposeScope() : x.MoveToOuterDisposeScope();
    }

    public IReadOnlyDictionary<string, Tensor> CheckpointParameters() =>
        named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
}
