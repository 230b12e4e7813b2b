using LLark.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;
using static LLark.Checkpoints.KeptScalars;

namespace LLark.Training.Encoder;

/// <summary>
/// What the encoder's trainers share: Adam after a linear warm-up, global-norm clipping, the batch and the seed. The
/// defaults are Jukebox's <c>opt</c> hps (Adam, lr 3e-4 after 100 warm-up steps, clip 1.0).
/// </summary>
public abstract record EncoderTrainingOptions
{
    /// <summary>Adam's learning rate after warm-up; default 3e-4.</summary>
    public double LearningRate { get; init; } = 3e-4;

    /// <summary>Steps of linear warm-up from 0; default 100.</summary>
    public int WarmupSteps { get; init; } = 100;

    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Gradients are scaled down to this global norm when above it; default 1.0.</summary>
    public double ClipNorm { get; init; } = 1.0;

    /// <summary>Windows per step.</summary>
    public abstract int Batch { get; init; }

    /// <summary>Seeds what each step draws: step s always draws the same, so a resumed run continues identically.</summary>
    public int Seed { get; init; }

    public virtual void Validate()
    {
        if (!(LearningRate > 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "the learning rate must be positive");
        if (WarmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(WarmupSteps), WarmupSteps, "warm-up steps cannot be negative");
        if (Batch < 1) throw new ArgumentOutOfRangeException(nameof(Batch), Batch, "the batch must be at least 1");
        if (!(ClipNorm > 0)) throw new ArgumentOutOfRangeException(nameof(ClipNorm), ClipNorm, "the clip norm must be positive");
    }
}

/// <summary>
/// Jukebox's optimiser over a fixed list of parameters: global-norm clipping, a linear warm-up, then
/// <see cref="AdamW"/> without decay (torch.optim.Adam's arithmetic). The moments are saved as <c>exp_avg/NAME</c> and
/// <c>exp_avg_sq/NAME</c> so a run resumes exactly. Shared by the encoder's trainers (prior and VQ-VAE).
/// </summary>
internal sealed class EncoderOptimizer : IDisposable
{
    private readonly TrainedTensor[] parameters;
    private readonly EncoderTrainingOptions options;
    private readonly AdamW adam;

    public EncoderOptimizer(IEnumerable<TrainedTensor> trained, EncoderTrainingOptions options)
    {
        parameters = [.. trained];
        foreach (TrainedTensor p in parameters)
            p.Tensor.requires_grad = true;
        this.options = options;
        adam = new AdamW(parameters, options.Beta1, options.Beta2, options.Epsilon, weightDecay: 0);
    }

    public IReadOnlyList<TrainedTensor> Parameters => parameters;

    /// <summary>Optimiser steps taken so far.</summary>
    public int Step
    {
        get => checked((int)adam.StepCount);
        set => adam.StepCount = value;
    }

    /// <summary>Gradients of <paramref name="loss"/> with respect to every parameter, in order.</summary>
    public IList<Tensor> Gradients(Tensor loss) => autograd.grad([loss], [.. parameters.Select(p => p.Tensor)]);

    /// <summary>One step with gradients <paramref name="grads"/>; returns their global norm before clipping.</summary>
    public double Apply(IList<Tensor> grads)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // The squares summed per tensor in float, then in double: not Gradients.ClipNorm's float norm of norms, which
        // rounds differently and would move every saved run's numbers.
        double norm = Math.Sqrt(grads.Sum(g => g.pow(Two).sum().item<float>()));
        double clip = norm > options.ClipNorm ? options.ClipNorm / (norm + 1e-6) : 1.0;
        // Scalars that outlive the native calls reading them (see LLark.Checkpoints.KeptScalars).
        using Scalar clipBy = clip.ToScalar();
        Tensor[] clipped = clip < 1.0 ? [.. grads.Select(g => g.mul(clipBy))] : [.. grads];
        int warmupSteps = options.WarmupSteps;
        double lr = options.LearningRate * (warmupSteps == 0 ? 1.0 : Math.Min(1.0, (Step + 1) / (double)warmupSteps));
        adam.Step(lr, clipped);
        return norm;
    }

    /// <summary>The moments as checkpoint entries (views of the live tensors).</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> Entries()
    {
        foreach ((string name, Tensor expAvg, Tensor expAvgSq) in adam.Moments())
        {
            yield return new("exp_avg/" + name, expAvg);
            yield return new("exp_avg_sq/" + name, expAvgSq);
        }
    }

    /// <summary>Reads the moments back from a state file written from <see cref="Entries"/>.</summary>
    public void Load(SafetensorsFile state)
    {
        using var noGrad = no_grad();
        foreach ((string name, Tensor expAvg, Tensor expAvgSq) in adam.Moments())
        {
            state.ReadInto("exp_avg/" + name, expAvg);
            state.ReadInto("exp_avg_sq/" + name, expAvgSq);
        }
    }

    /// <summary>
    /// The step a saved state resumes from, after checking that the state and the weights file beside it were saved at
    /// the same step (a save cut short leaves them apart) and with the same seed as <paramref name="seed"/>.
    /// </summary>
    public static int ResumedStep(SafetensorsFile state, SafetensorsFile weights, int seed)
    {
        string? stateStep = state.Metadata.GetValueOrDefault("step"), weightsStep = weights.Metadata.GetValueOrDefault("step");
        if (stateStep is null || stateStep != weightsStep)
            throw new CheckpointException($"{state.Path} is at step {stateStep ?? "?"} but {weights.Path} at step {weightsStep ?? "?"}: a save was interrupted; " +
                "train again from the last complete folder");
        if (state.Metadata.GetValueOrDefault("seed") is { } saved && saved != seed.ToString(System.Globalization.CultureInfo.InvariantCulture))
            throw new CheckpointException($"{state.Path} was trained with seed {saved}; resume it with the same seed (not {seed})");
        return int.Parse(stateStep, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture);
    }

    public void Dispose() => adam.Dispose();
}
