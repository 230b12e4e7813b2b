using LLark.Encoder.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace LLark.Training.Encoder;

/// <summary>A torch <c>nn.ConvTranspose1d</c>: <c>weight</c> [in, out, kernel] and <c>bias</c> [out].</summary>
internal sealed class ConvTranspose1d : nn.Module
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly long stride;
    private readonly long padding;

    public ConvTranspose1d(string name, long inChannels, long outChannels, long kernel, long stride, long padding, Device device) : base(name)
    {
        weight = new Parameter(empty([inChannels, outChannels, kernel], dtype: ScalarType.Float32, device: device), requires_grad: false);
        bias = new Parameter(empty([outChannels], dtype: ScalarType.Float32, device: device), requires_grad: false);
        this.stride = stride;
        this.padding = padding;
        RegisterComponents();
    }

    public Tensor Forward(Tensor x) => nn.functional.conv_transpose1d(x, weight, bias, stride: stride, padding: padding);
}

/// <summary>
/// One level block of a Jukebox decoder (<c>DecoderConvBock</c>): a kernel-3 conv from <c>emb_width</c> to the level's
/// width (<c>model.0</c>), then per down step a resnet with the dilations reversed (<c>model.{j+1}.0</c>) and a
/// transposed conv of kernel 2s, stride s, padding s/2 that doubles the length (<c>model.{j+1}.1</c>); the last one
/// returns to <c>emb_width</c> channels.
/// </summary>
internal sealed class DecoderLevelBlock : nn.Module
{
    private readonly Conv1d input;
    private readonly (ResConv1dBlock[] Units, ConvTranspose1d Up)[] steps;

    public DecoderLevelBlock(string name, int downs, int stride, VqvaeConfig config, Device device) : base(name)
    {
        int width = config.TopWidth;
        input = new Conv1d("0", config.EmbWidth, width, kernel: 3, stride: 1, padding: 1, dilation: 1, device);
        var children = new List<(string, nn.Module)> { ("0", input) };
        steps = new (ResConv1dBlock[], ConvTranspose1d)[downs];
        for (int j = 0; j < downs; j++)
        {
            // Resnet1D(reverse_dilation=True): the units keep their names 0..depth-1 but run the dilations high to low.
            ResConv1dBlock[] units = [.. Enumerable.Range(0, config.TopDepth)
                .Select(r => new ResConv1dBlock(DownStep.Name(r), width, config.ResnetStateWidth, config.Dilation(config.TopDepth - 1 - r), device))];
            var up = new ConvTranspose1d("1", width, j == downs - 1 ? config.EmbWidth : width, 2 * stride, stride, stride / 2, device);
            var resnet = new Children("0", [("model", new Children("model", units.Select(u => (u.GetName(), (nn.Module)u))))]);
            children.Add((DownStep.Name(j + 1), new Children(DownStep.Name(j + 1), [("0", resnet), ("1", up)])));
            steps[j] = (units, up);
        }
        register_module("model", new Children("model", children));
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor h = input.Forward(x);
        foreach ((ResConv1dBlock[] units, ConvTranspose1d up) in steps)
        {
            foreach (ResConv1dBlock unit in units)
                h = unit.Forward(h);
            h = up.Forward(h);
        }
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The VQ-VAE's top-level decoder (<c>decoders.{top}</c>, Jukebox's <c>Decoder</c> with <c>all_levels=False</c>): the
/// level blocks from the top down, each undoing one encoder block's downsampling, then <c>out</c>, a kernel-3 conv to
/// one audio channel. Quantised codes [N, emb_width, T / hop] to audio [N, T]. LLark never decodes; this is what
/// training the VQ-VAE reconstructs through.
/// </summary>
internal sealed class VqvaeTopDecoder : nn.Module
{
    private readonly DecoderLevelBlock[] blocks;
    private readonly Conv1d output;

    public VqvaeTopDecoder(VqvaeConfig config, Device device) : base("vqvae")
    {
        string top = DownStep.Name(config.TopLevel);
        blocks = [.. Enumerable.Range(0, config.Levels).Select(b => new DecoderLevelBlock(DownStep.Name(b), config.DownsT[b], config.StridesT[b], config, device))];
        output = new Conv1d("out", config.EmbWidth, 1, kernel: 3, stride: 1, padding: 1, dilation: 1, device);
        var decoder = new Children(top, [("level_blocks", new Children("level_blocks", blocks.Select(b => (b.GetName(), (nn.Module)b)))), ("out", output)]);
        register_module("decoders", new Children("decoders", [(top, decoder)]));
    }

    public Tensor Forward(Tensor quantised)
    {
        using var scope = NewDisposeScope();
        Tensor h = quantised;
        for (int b = blocks.Length - 1; b >= 0; b--)
            h = blocks[b].Forward(h);
        return output.Forward(h).squeeze(1).MoveToOuterDisposeScope();
    }

    public IReadOnlyDictionary<string, Tensor> CheckpointParameters() =>
        named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
}
