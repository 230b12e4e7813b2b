using LLark.Encoder.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Tests.Encoder.Engine.Model;

/// <summary>The encoder's conv layer, as training runs it: its input's gradient through libtorch's oneDNN kernels.</summary>
public sealed class Conv1dTests
{
    private static Conv1d Trainable(long inChannels, long outChannels, long dilation, long seed)
    {
        var conv = new Conv1d("conv", inChannels, outChannels, kernel: 3, stride: 1, padding: dilation, dilation: dilation, CPU);
        using var generator = new Generator((ulong)seed);
        using var noGrad = no_grad();
        using Scalar scale = 0.3.ToScalar();
        foreach ((string _, TorchSharp.Modules.Parameter p) in conv.named_parameters())
        {
            using Tensor drawn = randn(p.shape, generator: generator);
            p.copy_(drawn.mul_(scale));
            p.requires_grad = true;
        }
        return conv;
    }

    [Theory]
    [InlineData(6, 6, 1)]
    [InlineData(6, 6, 9)]
    [InlineData(16, 1, 1)]
    [InlineData(6, 16, 3)]
    public void TheGradientsAreTheFloat64Ones(long inChannels, long outChannels, long dilation)
    {
        // oneDNN's AVX-512 kernels gave a 6-channel conv's input gradient wrong in every element on a Zen 5.
        using Conv1d conv = Trainable(inChannels, outChannels, dilation, seed: 7);
        using var scope = NewDisposeScope();
        using var generator = new Generator(8);
        Tensor input = randn(4, inChannels, 4096, generator: generator), upstream = randn(4, outChannels, 4096, generator: generator);
        Tensor[] parameters = [.. conv.named_parameters().Select(p => (Tensor)p.parameter)];
        Tensor x = input.detach().requires_grad_(true);
        IList<Tensor> grads;
        using (enable_grad())
            grads = autograd.grad([conv.Forward(x)], [x, .. parameters], [upstream]);
        // The float64 reference runs libtorch's own convolution: oneDNN takes only float32.
        Tensor x64 = input.to(ScalarType.Float64).requires_grad_(true);
        Tensor[] parameters64 = [.. parameters.Select(p => p.detach().to(ScalarType.Float64).requires_grad_(true))];
        IList<Tensor> expected;
        using (enable_grad())
        {
            Tensor y64 = nn.functional.conv1d(x64, parameters64[0], parameters64[1], padding: dilation, dilation: dilation);
            expected = autograd.grad([y64], [x64, .. parameters64], [upstream.to(ScalarType.Float64)]);
        }
        for (int i = 0; i < grads.Count; i++)
        {
            double error = grads[i].to(ScalarType.Float64).sub(expected[i]).abs().max().item<double>();
            double size = expected[i].abs().max().item<double>();
            // float32 sums of 16384 products: a weight's gradient is a few hundred, good to about 1e-5 of that.
            Assert.True(error <= 1e-4 * Math.Max(1, size), $"gradient {i}: off by {error} (largest {size})");
        }
    }

    [Fact]
    public void TheInputsGradientStaysFiniteWhateverTheAllocatorHandsOut()
    {
        // oneDNN 3.7's AVX-512 backward-data kernel read the unzeroed padding lanes of a 6-channel output's block: a NaN
        // left there by an earlier tensor made whole channels of the gradient NaN, a few times in a hundred steps.
        using Scalar nan = double.NaN.ToScalar();
        foreach (long dilation in new long[] { 1, 3 })
        {
            using Conv1d conv = Trainable(6, 6, dilation, seed: 5);
            using var generator = new Generator(9);
            using Tensor input = randn(4, 6, 4096, generator: generator);
            for (int i = 0; i < 100; i++)
            {
                using var scope = NewDisposeScope();
                // Freed blocks full of NaN, for the next allocations of about the blocked gradient's size to reuse.
                for (int k = 0; k < 8; k++)
                    full([4 * 16 * 4096 + k * 64], nan).Dispose();
                Tensor x = input.detach().requires_grad_(true);
                using (enable_grad())
                {
                    Tensor y = conv.Forward(x);
                    Tensor grad = autograd.grad([y], [x], [ones_like(y)])[0];
                    Assert.False(grad.isnan().any().item<bool>(), $"NaN in the input's gradient at step {i}, dilation {dilation}");
                }
            }
        }
    }

    [Fact]
    public void TrainingComputesTheSameOutputsAsInference()
    {
        using Conv1d conv = Trainable(6, 6, 3, seed: 6);
        using var scope = NewDisposeScope();
        Tensor input = randn(2, 6, 1000);
        Tensor inferred;
        using (no_grad())
            inferred = conv.Forward(input);
        Tensor x = input.detach().requires_grad_(true);
        Tensor trained;
        using (enable_grad())
            trained = conv.Forward(x);
        Assert.Equal(inferred.shape, trained.shape);
        // Bit for bit: the zero channels change no sum, and oneDNN computed a padded block of 16 channels before too.
        Assert.Equal(0, trained.detach().ne(inferred).sum().item<long>());
    }
}
