using LLark.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Training;

/// <summary>
/// AdamW as torch.optim.AdamW computes it (single-tensor path): decoupled decay, then the moments, then the
/// bias-corrected step, with every scalar in double precision as Python's floats are. The moments live beside each
/// tensor so the training state can save and restore them exactly.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly IReadOnlyList<TrainedTensor> parameters;
    private readonly Tensor[] expAvg;
    private readonly Tensor[] expAvgSq;

    public AdamW(IReadOnlyList<TrainedTensor> parameters, double beta1, double beta2, double eps, double weightDecay)
    {
        this.parameters = parameters;
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        WeightDecay = weightDecay;
        expAvg = [.. parameters.Select(p => zeros_like(p.Tensor).detach())];
        expAvgSq = [.. parameters.Select(p => zeros_like(p.Tensor).detach())];
    }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }

    /// <summary>Steps taken so far (torch's state["step"]).</summary>
    public long StepCount { get; set; }

    /// <summary>First and second moments by parameter name, for the training state.</summary>
    public IEnumerable<(string Name, Tensor ExpAvg, Tensor ExpAvgSq)> Moments() =>
        parameters.Select((p, i) => (p.Name, expAvg[i], expAvgSq[i]));

    /// <summary>One update at learning rate <paramref name="lr"/> from the gradients the parameters hold.</summary>
    public void Step(double lr)
    {
        Tensor?[] gradients = [.. parameters.Select(p => p.Tensor.grad)];
        try
        {
            Step(lr, gradients);
        }
        finally
        {
            foreach (Tensor? g in gradients) g?.Dispose();
        }
    }

    /// <summary>
    /// One update at learning rate <paramref name="lr"/> from <paramref name="gradients"/>, in parameter order, for
    /// trainers that take them from autograd.grad rather than leaving them on the parameters; a null one leaves its
    /// parameter and moments as they are.
    /// </summary>
    public void Step(double lr, IReadOnlyList<Tensor?> gradients)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        if (gradients.Count != parameters.Count)
            throw new ArgumentException($"{gradients.Count} gradients for {parameters.Count} parameters", nameof(gradients));
        StepCount++;
        double bias1 = 1 - Math.Pow(Beta1, StepCount);
        double bias2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, StepCount));
        double stepSize = lr / bias1;
        using var noGrad = no_grad();
        // Every Scalar the native calls read stays alive until the loop ends (see LLark.Checkpoints.KeptScalars: a
        // temporary one can be finalized by a collection on another thread mid-call).
        using Scalar decay = (1 - lr * WeightDecay).ToScalar(), beta1 = Beta1.ToScalar(), rest1 = (1 - Beta1).ToScalar(),
            beta2 = Beta2.ToScalar(), rest2 = (1 - Beta2).ToScalar(), bias2 = bias2Sqrt.ToScalar(), eps = Eps.ToScalar(),
            step = (-stepSize).ToScalar();
        for (int i = 0; i < parameters.Count; i++)
        {
            Tensor p = parameters[i].Tensor;
            Tensor? grad = gradients[i];
            if (grad is null) continue;
            using var scope = NewDisposeScope();
            if (WeightDecay != 0) p.mul_(decay);
            expAvg[i].mul_(beta1).add_(grad, alpha: rest1);
            expAvgSq[i].mul_(beta2).addcmul_(grad, grad, value: rest2);
            Tensor denom = expAvgSq[i].sqrt().div_(bias2).add_(eps, KeptScalars.One);
            p.addcdiv_(expAvg[i], denom, value: step);
        }
    }

    public void Dispose()
    {
        foreach (Tensor t in expAvg) t.Dispose();
        foreach (Tensor t in expAvgSq) t.Dispose();
    }
}

/// <summary>Gradient helpers with torch.nn.utils' arithmetic.</summary>
public static class Gradients
{
    /// <summary>
    /// clip_grad_norm_: the 2-norm of the per-tensor 2-norms; when over <paramref name="maxNorm"/> every gradient is
    /// scaled by maxNorm / (norm + 1e-6). Returns the norm before clipping.
    /// </summary>
    public static double ClipNorm(IEnumerable<TrainedTensor> parameters, double? maxNorm)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor[] grads = [.. parameters.Select(p => p.Tensor.grad).Where(g => g is not null).Select(g => g!)];
        if (grads.Length == 0) return 0;
        Tensor total = stack(grads.Select(g => g.norm()).ToArray()).norm();
        if (maxNorm is { } max)
        {
            using Scalar tiny = 1e-6.ToScalar(), limit = max.ToScalar();
            Tensor coef = total.add(tiny, KeptScalars.One).reciprocal_().mul_(limit).clamp_max_(KeptScalars.One);
            foreach (Tensor g in grads) g.mul_(coef);
        }
        return total.item<float>();
    }

    public static void Zero(IEnumerable<TrainedTensor> parameters)
    {
        using var noGrad = no_grad();
        foreach (TrainedTensor p in parameters)
        {
            using Tensor? g = p.Tensor.grad;
            g?.zero_();
        }
    }
}

/// <summary>
/// transformers' get_cosine_schedule_with_warmup with the Trainer's warm-up of ceil(total * ratio) steps: linear from 0
/// over the warm-up, then half a cosine down to 0 at the last step. Step s (0-based) is the s-th optimizer update, so
/// the first update runs at lr 0 when there is a warm-up, as it does under the Trainer.
/// </summary>
public sealed record CosineSchedule(double PeakLr, int TotalSteps, int WarmupSteps)
{
    public static CosineSchedule FromRatio(double peakLr, int totalSteps, double warmupRatio) =>
        new(peakLr, totalSteps, (int)Math.Ceiling(totalSteps * warmupRatio));

    public double At(int step)
    {
        if (step < WarmupSteps) return PeakLr * step / Math.Max(1, WarmupSteps);
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return PeakLr * Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * 0.5 * 2.0 * progress)));
    }
}
