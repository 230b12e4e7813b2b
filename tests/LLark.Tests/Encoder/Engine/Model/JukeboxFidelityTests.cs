using LLark.Encoder.Engine.Model;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace LLark.Tests.Encoder.Engine.Model;

/// <summary>
/// Every stage of the tiny Jukebox against the outputs of the original OpenAI code, each stage fed its stored
/// input so errors do not compound, from every checkpoint container.
/// </summary>
public sealed class JukeboxFidelityTests(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(JukeboxTiny.Formats), MemberType = typeof(JukeboxTiny))]
    public void TheVqvaeReproducesTheEncoderOutputAndEveryCode(string vqvae, string prior)
    {
        using var scope = NewDisposeScope();
        using var encoder = JukeboxTiny.Load(vqvae, prior);
        using var noGrad = no_grad();
        Tensor audio = tensor(JukeboxTiny.NormalizedAudio()).unsqueeze(0);
        Tensor encoded = encoder.Vqvae.EncodeContinuous(audio);
        double diff = JukeboxTiny.MaxAbsDiff(JukeboxTiny.Golden("vq_encoder_out_level2.npy"), encoded);
        output.WriteLine($"{vqvae}: encoder output max |diff| {diff:E2}");
        Assert.True(diff <= JukeboxTiny.Tolerance, $"encoder output max |diff| {diff:E2}");

        long[] codes = encoder.Vqvae.Quantise(encoded).data<long>().ToArray();
        Assert.Equal(JukeboxTiny.GoldenCodes("vq_codes_level2.npy"), codes);
    }

    [Fact]
    public void ThePaddedEncodeReproducesLLarksCodes()
    {
        using var scope = NewDisposeScope();
        using var encoder = JukeboxTiny.Load();
        using var noGrad = no_grad();
        float[] audio = JukeboxTiny.NormalizedAudio();
        Tensor wave = zeros(1, encoder.Config.ContextSamples);
        wave.narrow(1, 0, audio.Length).copy_(tensor(audio).unsqueeze(0));
        Assert.Equal(JukeboxTiny.GoldenCodes("llark_vq_codes_level2_padded.npy"), encoder.Vqvae.Encode(wave).data<long>().ToArray());
    }

    [Theory]
    [MemberData(nameof(JukeboxTiny.Formats), MemberType = typeof(JukeboxTiny))]
    public void ThePriorInputIsTheShiftedCodesPlusConditioning(string vqvae, string prior)
    {
        using var scope = NewDisposeScope();
        using var encoder = JukeboxTiny.Load(vqvae, prior);
        using var noGrad = no_grad();
        long[] codes = JukeboxTiny.GoldenCodes("vq_codes_level2.npy");
        (Tensor yCond, Tensor xCond) = encoder.Prior.Conditioning(ConditioningLabels.ForExtraction(encoder.Config), codes.Length);
        double yDiff = JukeboxTiny.MaxAbsDiff(JukeboxTiny.Golden("cond_y_cond.npy"), yCond);
        Tensor input = encoder.Prior.Input(tensor(codes).unsqueeze(0), yCond, xCond);
        double diff = JukeboxTiny.MaxAbsDiff(JukeboxTiny.Golden("prior_input.npy"), input);
        output.WriteLine($"{prior}: y_cond max |diff| {yDiff:E2}, prior input max |diff| {diff:E2}");
        Assert.True(yDiff <= JukeboxTiny.Tolerance);
        Assert.True(diff <= JukeboxTiny.Tolerance);
    }

    [Theory]
    [MemberData(nameof(JukeboxTiny.Formats), MemberType = typeof(JukeboxTiny))]
    public void EveryBlockReproducesTheResidualStream(string vqvae, string prior)
    {
        using var scope = NewDisposeScope();
        using var encoder = JukeboxTiny.Load(vqvae, prior, layers: 6);
        using var noGrad = no_grad();
        Tensor input = JukeboxTiny.Golden("prior_input.npy");
        Tensor golden = JukeboxTiny.Golden("prior_layer_outputs.npy");
        long rows = golden.shape[1];
        var diffs = new double[6];
        Tensor? layer3 = null;
        encoder.Prior.Forward(input, (block, h) =>
        {
            diffs[block - 1] = JukeboxTiny.MaxAbsDiff(golden[block - 1], h[0].narrow(0, 0, rows));
            if (block == 3) layer3 = h[0].clone().DetachFromDisposeScope();
        });
        output.WriteLine($"{prior}: block outputs max |diff| {string.Join(", ", diffs.Select(d => d.ToString("E2", System.Globalization.CultureInfo.InvariantCulture)))}");
        Assert.All(diffs, d => Assert.True(d <= JukeboxTiny.Tolerance, $"max |diff| {d:E2}"));
        using Tensor acts = layer3!;
        double actsDiff = JukeboxTiny.MaxAbsDiff(JukeboxTiny.Golden("acts_layer3.npy"), acts);
        output.WriteLine($"{prior}: acts_layer3 max |diff| {actsDiff:E2}");
        Assert.True(actsDiff <= JukeboxTiny.Tolerance);
    }

    [Theory]
    [MemberData(nameof(JukeboxTiny.Formats), MemberType = typeof(JukeboxTiny))]
    public void TheJukemirlibPathFromAudioReproducesTheActivationsAndPooledFrames(string vqvae, string prior)
    {
        using var scope = NewDisposeScope();
        using var encoder = JukeboxTiny.Load(vqvae, prior);
        float[] audio = JukeboxTiny.NormalizedAudio();
        Tensor acts = encoder.Activations(audio, ExtractionPath.Jukemirlib, null, default);
        double actsDiff = JukeboxTiny.MaxAbsDiff(JukeboxTiny.Golden("acts_layer3.npy"), acts);

        AudioEmbedding at25 = encoder.Embed(audio, new EmbedOptions { Path = ExtractionPath.Jukemirlib, Fps = 25 });
        AudioEmbedding at10 = encoder.Embed(audio, new EmbedOptions { Path = ExtractionPath.Jukemirlib, Fps = 10 });
        double diff25 = JukeboxTiny.MaxAbsDiff(JukeboxTiny.Golden("pooled_llark_25fps_layer3.npy"), tensor(at25.Values, [at25.Frames, at25.Width]));
        double diff10 = JukeboxTiny.MaxAbsDiff(JukeboxTiny.Golden("pooled_llark_10fps_layer3.npy"), tensor(at10.Values, [at10.Frames, at10.Width]));
        output.WriteLine($"{prior}: acts {actsDiff:E2}, pooled 25 fps {diff25:E2}, pooled 10 fps {diff10:E2}");
        Assert.True(actsDiff <= JukeboxTiny.Tolerance);
        Assert.True(diff25 <= JukeboxTiny.Tolerance);
        Assert.True(diff10 <= JukeboxTiny.Tolerance);
        Assert.Equal((106, 1378), (at25.Frames, at25.Tokens));
        Assert.Equal(40, at10.Frames);
        Assert.Equal(344.53125 / 13, at25.FramesPerSecond, 12);
    }

    [Theory]
    [MemberData(nameof(JukeboxTiny.Formats), MemberType = typeof(JukeboxTiny))]
    public void TheLLarkPaddedPathReproducesItsActivationsAndPooledFrames(string vqvae, string prior)
    {
        using var scope = NewDisposeScope();
        using var encoder = JukeboxTiny.Load(vqvae, prior);
        float[] audio = JukeboxTiny.NormalizedAudio();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Tensor acts = encoder.Activations(audio, ExtractionPath.LLarkPadded, null, default);
        output.WriteLine($"padded activations in {clock.ElapsedMilliseconds} ms");
        double actsDiff = JukeboxTiny.MaxAbsDiff(JukeboxTiny.Golden("llark_acts_layer3.npy"), acts);
        AudioEmbedding pooled = encoder.Embed(audio);
        double diff25 = JukeboxTiny.MaxAbsDiff(JukeboxTiny.Golden("llark_pooled_25fps_layer3.npy"), tensor(pooled.Values, [pooled.Frames, pooled.Width]));
        output.WriteLine($"{prior}: llark acts {actsDiff:E2}, llark pooled 25 fps {diff25:E2}");
        Assert.True(actsDiff <= JukeboxTiny.Tolerance);
        Assert.True(diff25 <= JukeboxTiny.Tolerance);
    }
}
