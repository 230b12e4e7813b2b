using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;
using static LLark.Checkpoints.KeptScalars;

namespace LLark.Encoder.Engine.Model;

/// <summary>One resnet unit: <c>x + conv1x1(relu(conv3_dilated(relu(x))))</c>; the convs are <c>model.1</c> and <c>model.3</c>.</summary>
internal sealed class ResConv1dBlock : nn.Module
{
    private readonly Conv1d dilated;
    private readonly Conv1d pointwise;

    public ResConv1dBlock(string name, int width, int state, int dilation, Device device) : base(name)
    {
        dilated = new Conv1d("1", width, state, kernel: 3, stride: 1, padding: dilation, dilation: dilation, device);
        pointwise = new Conv1d("3", state, width, kernel: 1, stride: 1, padding: 0, dilation: 1, device);
        register_module("model", new Children("model", [("1", dilated), ("3", pointwise)]));
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor h = dilated.Forward(nn.functional.relu(x));
        h = pointwise.Forward(h.relu_());
        return x.add(h, One).MoveToOuterDisposeScope();
    }
}

/// <summary>A down step: a stride-s conv (kernel 2s, padding s/2) then a dilated resnet (<c>model.{j}.0</c>, <c>model.{j}.1</c>).</summary>
internal sealed class DownStep : nn.Module
{
    private readonly Conv1d down;
    private readonly ResConv1dBlock[] units;

    public DownStep(string name, int inChannels, int stride, VqvaeConfig config, Device device) : base(name)
    {
        int width = config.TopWidth;
        down = new Conv1d("0", inChannels, width, kernel: 2 * stride, stride: stride, padding: stride / 2, dilation: 1, device);
        units = Enumerable.Range(0, config.TopDepth)
            .Select(r => new ResConv1dBlock(Name(r), width, config.ResnetStateWidth, config.Dilation(r), device))
            .ToArray();
        var resnet = new Children("1", [("model", new Children("model", units.Select(u => (u.GetName(), (nn.Module)u))))]);
        register_module("0", down);
        register_module("1", resnet);
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor h = down.Forward(x);
        foreach (ResConv1dBlock unit in units)
            h = unit.Forward(h);
        return h.MoveToOuterDisposeScope();
    }

    internal static string Name(int i) => i.ToString(CultureInfo.InvariantCulture);
}

/// <summary>One level block of the encoder: <c>down_t</c> down steps, then a kernel-3 conv to <c>emb_width</c> channels.</summary>
internal sealed class EncoderLevelBlock : nn.Module
{
    private readonly DownStep[] steps;
    private readonly Conv1d output;

    public EncoderLevelBlock(string name, int inChannels, int downs, int stride, VqvaeConfig config, Device device) : base(name)
    {
        steps = Enumerable.Range(0, downs)
            .Select(j => new DownStep(DownStep.Name(j), j == 0 ? inChannels : config.TopWidth, stride, config, device))
            .ToArray();
        output = new Conv1d(DownStep.Name(downs), config.TopWidth, config.EmbWidth, kernel: 3, stride: 1, padding: 1, dilation: 1, device);
        register_module("model", new Children("model", steps.Select(s => (s.GetName(), (nn.Module)s)).Append((output.GetName(), output))));
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor h = x;
        foreach (DownStep step in steps)
            h = step.Forward(h);
        return output.Forward(h).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The VQ-VAE's top-level encoder (<c>encoders.{top}</c>) and that level's codebook
/// (<c>bottleneck.level_blocks.{top}.k</c>): audio [N, T] to codes [N, T / hop].
/// </summary>
internal sealed class VqvaeTopEncoder : nn.Module
{
    private readonly EncoderLevelBlock[] blocks;
    private readonly Parameter codebook;

    public VqvaeTopEncoder(VqvaeConfig config, Device device) : base("vqvae")
    {
        Config = config;
        string top = DownStep.Name(config.TopLevel);
        blocks = Enumerable.Range(0, config.Levels)
            .Select(b => new EncoderLevelBlock(DownStep.Name(b), b == 0 ? 1 : config.EmbWidth, config.DownsT[b], config.StridesT[b], config, device))
            .ToArray();
        var encoder = new Children(top, [("level_blocks", new Children("level_blocks", blocks.Select(b => (b.GetName(), (nn.Module)b))))]);
        register_module("encoders", new Children("encoders", [(top, encoder)]));

        codebook = new Parameter(empty([config.CodebookSize, config.EmbWidth], dtype: ScalarType.Float32, device: device), requires_grad: false);
        var level = new Children(top, []);
        level.register_parameter("k", codebook);
        register_module("bottleneck", new Children("bottleneck", [("level_blocks", new Children("level_blocks", [(top, level)]))]));
    }

    public VqvaeConfig Config { get; }

    /// <summary>The level's codebook [k_bins, emb_width] (<c>bottleneck.level_blocks.{top}.k</c>).</summary>
    internal Tensor Codebook => codebook;

    /// <summary>Replaces the codebook's values (same shape), as Jukebox's bottleneck does when it initialises or restarts codes.</summary>
    internal void SetCodebook(Tensor values)
    {
        if (!values.shape.SequenceEqual(codebook.shape))
            throw new ArgumentException($"a codebook of [{string.Join(", ", values.shape)}] does not replace one of [{string.Join(", ", codebook.shape)}]", nameof(values));
        using var noGrad = no_grad();
        codebook.copy_(values);
    }

    /// <summary>Encoder output before quantisation: audio [N, T] to [N, emb_width, T / hop].</summary>
    public Tensor EncodeContinuous(Tensor audio)
    {
        using var scope = NewDisposeScope();
        Tensor h = audio.unsqueeze(1);
        foreach (EncoderLevelBlock block in blocks)
            h = block.Forward(h);
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Nearest code per frame: argmin over j of |x|² − 2·x·k_j + |k_j|², in that arithmetic, so ties and near-ties
    /// resolve as Jukebox's bottleneck resolves them. [N, emb, T] to int64 [N, T].
    /// </summary>
    public Tensor Quantise(Tensor encoded)
    {
        using var scope = NewDisposeScope();
        long n = encoded.shape[0], t = encoded.shape[2];
        Tensor x = Rows(encoded);
        return NearestCodes(x, codebook).view(n, t).MoveToOuterDisposeScope();
    }

    /// <summary>Encoder outputs [N, emb, T] as rows [N·T, emb], the vectors the bottleneck quantises.</summary>
    internal static Tensor Rows(Tensor encoded) => encoded.permute(0, 2, 1).reshape(-1, encoded.shape[1]);

    /// <summary>argmin over j of |x|² − 2·x·k_j + |k_j|² for rows x [M, emb] and codebook k [bins, emb]: int64 [M].</summary>
    internal static Tensor NearestCodes(Tensor x, Tensor k)
    {
        using var scope = NewDisposeScope();
        // −2·x·k + |x|² + |k|², the same IEEE sums as |x|² − 2·x·k + |k|², with no temporary Scalars (see KeptScalars).
        Tensor distance = matmul(x, k.t()).mul_(MinusTwo)
            .add_(x.pow(Two).sum(-1, keepdim: true), One)
            .add_(k.pow(Two).sum(-1).unsqueeze(0), One);
        return distance.argmin(-1).MoveToOuterDisposeScope();
    }

    public Tensor Encode(Tensor audio)
    {
        using var scope = NewDisposeScope();
        return Quantise(EncodeContinuous(audio)).MoveToOuterDisposeScope();
    }

    public IReadOnlyDictionary<string, Tensor> CheckpointParameters() =>
        named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
}
