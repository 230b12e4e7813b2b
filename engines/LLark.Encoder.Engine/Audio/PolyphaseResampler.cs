namespace LLark.Encoder.Engine.Audio;

/// <summary>
/// <see cref="AudioDsp.Resample"/> fed chunk by chunk: the same outputs, bit for bit, while holding only the input
/// the filter spans and the first <c>keep</c> outputs. Every output, kept or not, counts towards <see cref="Peak"/>, so
/// a clip longer than the encoder's context can be normalised by the peak of all of it without being stored.
/// </summary>
public sealed class PolyphaseResampler
{
    private readonly bool identity;
    private readonly int up;
    private readonly int down;
    private readonly int halfLength;
    private readonly double[] filter = [];
    private readonly long keep;
    private float[] window = [];
    // window[i] is input sample windowStart + i.
    private long windowStart;
    private int windowCount;
    private long received;
    private long next;
    private float[] kept;
    private int keptCount;
    private bool finished;

    /// <param name="fromRate">The input's rate.</param>
    /// <param name="toRate">The output's rate.</param>
    /// <param name="keep">Outputs to keep, from the first.</param>
    /// <param name="inputHint">
    /// Input samples expected in all, if known (0 if not): the kept outputs are then allocated once at their final size
    /// instead of grown by doubling, which for a full context would leave as much again in discarded arrays. Only a
    /// hint: more or fewer inputs give the same outputs.
    /// </param>
    /// <param name="kaiserBeta">The filter's Kaiser window β.</param>
    /// <param name="halfWidthZeros">The filter's half width, in zero crossings of the sinc.</param>
    public PolyphaseResampler(int fromRate, int toRate, long keep, long inputHint = 0, double kaiserBeta = 5.0, int halfWidthZeros = 10)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(fromRate);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(toRate);
        ArgumentOutOfRangeException.ThrowIfNegative(keep);
        ArgumentOutOfRangeException.ThrowIfNegative(inputHint);
        this.keep = keep;
        identity = fromRate == toRate;
        if (!identity)
        {
            int g = AudioDsp.Gcd(fromRate, toRate);
            up = toRate / g;
            down = fromRate / g;
            int maxRate = Math.Max(up, down);
            halfLength = halfWidthZeros * maxRate;
            filter = AudioDsp.KaiserLowPass(2 * halfLength + 1, 1.0 / maxRate, kaiserBeta);
            for (int i = 0; i < filter.Length; i++)
                filter[i] *= up;
            // A read of the decoder and the inputs the filter still spans, so that the window never grows for it.
            window = new float[AudioReader.ChunkFrames + filter.Length / up + 2];
        }
        // Finish makes ceil(n·up/down) outputs of n inputs.
        Int128 expected = identity ? inputHint : ((Int128)inputHint * up + down - 1) / down;
        kept = new float[(int)Int128.Min(Math.Min(keep, Array.MaxLength), inputHint > 0 ? expected : 1 << 16)];
    }

    /// <summary>max |y| over every output so far, folded as <see cref="AudioDsp.PeakNormalise"/> folds it (NaN stays NaN).</summary>
    public float Peak { get; private set; }

    /// <summary>Outputs made so far, kept or not.</summary>
    public long Produced { get; private set; }

    public void Push(ReadOnlySpan<float> input)
    {
        if (finished) throw new InvalidOperationException("the resampler has been finished");
        if (identity)
        {
            foreach (float x in input) Emit(x);
            received += input.Length;
            return;
        }
        Drop();
        if (windowCount + input.Length > window.Length) Array.Resize(ref window, Math.Max(window.Length * 2, windowCount + input.Length));
        input.CopyTo(window.AsSpan(windowCount));
        windowCount += input.Length;
        received += input.Length;
        // An output is final once every input its filter reaches has arrived.
        for (; (next * down + halfLength) / up < received; next++) Emit(Output(next, received - 1));
    }

    /// <summary>Makes the outputs that needed the end of the input: ceil(n·up/down) outputs in all.</summary>
    public void Finish()
    {
        if (finished) return;
        finished = true;
        if (identity) return;
        long outputLength = (received * up + down - 1) / down;
        for (; next < outputLength; next++) Emit(Output(next, received - 1));
    }

    /// <summary>The first <c>keep</c> outputs (fewer when there were fewer), after <see cref="Finish"/>.</summary>
    public float[] Kept()
    {
        if (!finished) throw new InvalidOperationException("Finish the resampler first");
        return keptCount == kept.Length ? kept : kept[..keptCount];
    }

    /// <summary>y[m] = Σ_k x[k] · h[m·down − k·up + halfLength], over the taps inside the filter; as in <see cref="AudioDsp.Resample"/>.</summary>
    private float Output(long m, long lastInput)
    {
        long centre = m * down + halfLength;
        long kFirst = Math.Max(0, (centre - (filter.Length - 1) + up - 1) / up);
        long kLast = Math.Min(lastInput, centre / up);
        double sum = 0;
        for (long k = kFirst; k <= kLast; k++)
            sum += window[k - windowStart] * filter[centre - k * up];
        return (float)sum;
    }

    /// <summary>Forgets the input no output still to come reaches.</summary>
    private void Drop()
    {
        long centre = next * down + halfLength;
        long kFirst = Math.Max(0, (centre - (filter.Length - 1) + up - 1) / up);
        int drop = (int)Math.Min(windowCount, kFirst - windowStart);
        if (drop <= 0) return;
        Array.Copy(window, drop, window, 0, windowCount - drop);
        windowCount -= drop;
        windowStart += drop;
    }

    private void Emit(float y)
    {
        Peak = Math.Max(Peak, Math.Abs(y));
        if (Produced++ >= keep) return;
        if (keptCount == kept.Length) Array.Resize(ref kept, (int)Math.Min(keep, Math.Max(16, (long)kept.Length * 2)));
        kept[keptCount++] = y;
    }
}
