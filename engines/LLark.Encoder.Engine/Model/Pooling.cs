using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Encoder.Engine.Model;

/// <summary>Windowed mean pooling of activations to a frame rate, as LLark's AvgPool1d(window = stride) does it.</summary>
public static class Pooling
{
    /// <summary>Tokens per window: floor(tokens_per_second / fps), at least 1.</summary>
    public static int Window(double tokensPerSecond, double fps)
    {
        if (!(fps > 0) || double.IsInfinity(fps))
            throw new ArgumentOutOfRangeException(nameof(fps), fps, "fps must be a positive number");
        int window = (int)Math.Floor(tokensPerSecond / fps);
        if (window < 1)
            throw new ArgumentOutOfRangeException(nameof(fps), fps, $"fps {fps} is above the activation rate of {tokensPerSecond} Hz");
        return window;
    }

    /// <summary>
    /// Why <paramref name="samples"/> samples of audio (at the encoder's rate) give no frame at <paramref name="fps"/>,
    /// or null when they give at least one: a frame needs one pooling window of tokens, hop x window samples.
    /// </summary>
    public static string? TooShortForOneFrame(long samples, JukeboxEncoderConfig config, double fps)
    {
        ArgumentNullException.ThrowIfNull(config);
        long needed = (long)config.Vqvae.HopLength * Window(config.TokensPerSecond, fps);
        if (samples >= needed) return null;
        double rate = config.Prior.SampleRate;
        return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"the clip is {samples / rate:0.####} s long; one frame at {fps:0.###} fps needs {needed / rate:0.####} s");
    }

    /// <summary>[T, width] to [floor(T / window), width]; the incomplete last window is dropped.</summary>
    public static Tensor WindowedMean(Tensor activations, int window)
    {
        ArgumentNullException.ThrowIfNull(activations);
        using var scope = NewDisposeScope();
        long frames = activations.shape[0] / window;
        Tensor used = activations.narrow(0, 0, frames * window);
        return used.view(frames, window, activations.shape[1]).mean([1]).MoveToOuterDisposeScope();
    }
}
