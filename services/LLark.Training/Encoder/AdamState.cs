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
/// torch.optim.Adam over a fixed list of parameters, with linear warm-up and global-norm clipping as
/// <c>torch.nn.utils.clip_grad_norm_</c> does it; its moments are saved as <c>exp_avg/NAME</c> and <c>exp_avg_sq/NAME</c>
/// so a run resumes exactly. Shared by the encoder's trainers (prior and VQ-VAE).
/// </summary>
internal sealed class AdamState : IDisposable
{
    private readonly (string Name, Tensor Value)[] parameters;
    private readonly Tensor[] firstMoments;
    private readonly Tensor[] secondMoments;

    public AdamState(IEnumerable<(string Name, Tensor Value)> trained)
    {
        parameters = [.. trained];
        foreach ((_, Tensor p) in parameters)
            p.requires_grad = true;
        firstMoments = [.. parameters.Select(p => zeros_like(p.Value))];
        secondMoments = [.. parameters.Select(p => zeros_like(p.Value))];
    }

    public IReadOnlyList<(string Name, Tensor Value)> Parameters => parameters;

    /// <summary>Optimiser steps taken so far.</summary>
    public int Step { get; set; }

    /// <summary>Gradients of <paramref name="loss"/> with respect to every parameter, in order.</summary>
    public IList<Tensor> Gradients(Tensor loss) => autograd.grad([loss], [.. parameters.Select(p => p.Value)]);

    /// <summary>One Adam step with gradients <paramref name="grads"/>; returns their global norm before clipping.</summary>
    public double Apply(IList<Tensor> grads, EncoderTrainingOptions options)
    {
        double learningRate = options.LearningRate, beta1 = options.Beta1, beta2 = options.Beta2, epsilon = options.Epsilon, clipNorm = options.ClipNorm;
        int warmupSteps = options.WarmupSteps;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        double norm = Math.Sqrt(grads.Sum(g => g.pow(Two).sum().item<float>()));
        double clip = norm > clipNorm ? clipNorm / (norm + 1e-6) : 1.0;
        Step++;
        double lr = learningRate * (warmupSteps == 0 ? 1.0 : Math.Min(1.0, Step / (double)warmupSteps));
        double bias1 = 1 - Math.Pow(beta1, Step), bias2 = 1 - Math.Pow(beta2, Step);
        // Scalars that outlive the native calls reading them (see LLark.Checkpoints.KeptScalars).
        using Scalar clipBy = clip.ToScalar(), b1 = beta1.ToScalar(), rest1 = (1 - beta1).ToScalar(),
            b2 = beta2.ToScalar(), rest2 = (1 - beta2).ToScalar(), bias2Sqrt = Math.Sqrt(bias2).ToScalar(),
            eps = epsilon.ToScalar(), step = (-lr / bias1).ToScalar();
        for (int i = 0; i < parameters.Length; i++)
        {
            Tensor g = clip < 1.0 ? grads[i].mul(clipBy) : grads[i];
            firstMoments[i].mul_(b1).add_(g, alpha: rest1);
            secondMoments[i].mul_(b2).addcmul_(g, g, value: rest2);
            // torch.optim.Adam: p -= lr / bias1 · m / (√v / √bias2 + eps)
            Tensor denominator = secondMoments[i].sqrt().div_(bias2Sqrt).add_(eps, KeptScalars.One);
            parameters[i].Value.addcdiv_(firstMoments[i], denominator, value: step);
        }
        return norm;
    }

    /// <summary>The moments as checkpoint entries (views of the live tensors).</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> Entries()
    {
        for (int i = 0; i < parameters.Length; i++)
        {
            yield return new("exp_avg/" + parameters[i].Name, firstMoments[i]);
            yield return new("exp_avg_sq/" + parameters[i].Name, secondMoments[i]);
        }
    }

    /// <summary>Reads the moments back from a state file written from <see cref="Entries"/>.</summary>
    public void Load(SafetensorsFile state)
    {
        using var noGrad = no_grad();
        for (int i = 0; i < parameters.Length; i++)
        {
            state.ReadInto("exp_avg/" + parameters[i].Name, firstMoments[i]);
            state.ReadInto("exp_avg_sq/" + parameters[i].Name, secondMoments[i]);
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

    public void Dispose()
    {
        foreach (Tensor t in firstMoments.Concat(secondMoments))
            t.Dispose();
    }
}
