using System.Diagnostics;
using LLark.Language.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLark.Language.Engine.Generation;

/// <summary>Turns generated token ids into text, one id at a time (an incremental detokenizer).</summary>
public interface ITokenTextDecoder
{
    /// <summary>Adds a token and returns the text that is now complete.</summary>
    string Push(int tokenId);

    /// <summary>Returns whatever is still held back at the end of generation.</summary>
    string Flush();
}

/// <summary>
/// Single-sequence generation: prefill the prompt, then decode token by token with a KV cache, streaming
/// text as it becomes final. Runs on the caller's thread; the caller owns scheduling.
/// </summary>
public sealed class TextGenerator(LlamaForCausalLM model)
{
    /// <summary>Generates after prompt token ids (used as given: the caller adds BOS).</summary>
    public IEnumerable<GenerationUpdate> Generate(IReadOnlyList<int> promptIds, ITokenTextDecoder text,
        GenerationOptions options, CancellationToken cancellationToken = default)
    {
        if (promptIds.Count == 0) throw new InvalidRequestException("prompt", "the prompt is empty");
        int vocab = model.Config.VocabSize;
        foreach (int id in promptIds)
        {
            if ((uint)id >= (uint)vocab)
                throw new InvalidRequestException("prompt", $"prompt token id {id} is outside the vocabulary [0, {vocab})");
        }
        Tensor embeds;
        using (NewDisposeScope())
        {
            using Tensor ids = tensor(promptIds.Select(i => (long)i).ToArray(), dtype: ScalarType.Int64, device: model.Device);
            embeds = model.Embed(ids.unsqueeze(0)).MoveToOuterDisposeScope();
        }
        using (embeds)
        {
            foreach (GenerationUpdate update in Generate(embeds, promptIds, text, options, cancellationToken))
                yield return update;
        }
    }

    /// <summary>
    /// Generates after prompt embeddings [1, T, hidden] (how LLark feeds audio frames). <paramref name="promptIds"/>
    /// are the ids behind the embeddings, for the repetition penalty; they may be empty.
    /// </summary>
    public IEnumerable<GenerationUpdate> Generate(Tensor promptEmbeds, IReadOnlyList<int> promptIds, ITokenTextDecoder text,
        GenerationOptions options, CancellationToken cancellationToken = default)
    {
        options.Validate();
        if (promptEmbeds.dim() != 3 || promptEmbeds.shape[0] != 1)
            throw new InvalidRequestException("prompt", "prompt embeddings must be [1, tokens, hidden]");
        int promptLength = (int)promptEmbeds.shape[1];
        if (promptLength == 0) throw new InvalidRequestException("prompt", "the prompt is empty");
        int context = model.Config.MaxPositionEmbeddings;
        if (promptLength >= context) throw new ContextLengthException(promptLength + 1, context);

        var sampler = new TokenSampler(options.Sampling);
        var stop = new StopStringMatcher(options.StopStrings);
        var eos = options.StopOnEos ? model.Config.EosTokenIds.ToHashSet() : [];
        HashSet<int>? seen = options.Sampling.RepetitionPenalty != 1f ? promptIds.ToHashSet() : null;
        var generated = new List<int>();
        List<float>? logProbs = options.LogProbs ? [] : null;
        var row = new float[model.Config.VocabSize];
        var streamed = new System.Text.StringBuilder();
        var clock = Stopwatch.StartNew();
        TimeSpan firstToken = TimeSpan.Zero;
        FinishReason? finish = null;

        using KvCache cache = model.NewCache(Math.Min(context, promptLength + options.MaxNewTokens));
        if (cancellationToken.IsCancellationRequested) finish = FinishReason.Cancelled;
        else Step(promptEmbeds, cache, row);

        while (finish is null)
        {
            int next = sampler.Next(row, seen);
            float? logProb = logProbs is null ? null : TokenSampler.LogProb(row, next);
            if (logProb is { } lp) logProbs!.Add(lp);
            generated.Add(next);
            seen?.Add(next);
            if (generated.Count == 1) firstToken = clock.Elapsed;

            string delta = "";
            if (eos.Contains(next)) finish = FinishReason.Eos;
            else
            {
                delta = stop.Push(text.Push(next));
                if (stop.Stopped) finish = FinishReason.Stop;
                else if (generated.Count >= options.MaxNewTokens || cache.Length >= cache.Capacity) finish = FinishReason.Length;
                else if (cancellationToken.IsCancellationRequested) finish = FinishReason.Cancelled;
            }
            streamed.Append(delta);
            yield return new GenerationUpdate(next, delta, logProb, null);
            if (finish is null) StepToken(next, cache, row);
        }

        string tail = stop.Stopped ? "" : stop.Push(text.Flush()) + stop.Flush();
        var result = new GenerationResult(generated, streamed.Append(tail).ToString(), finish.Value, promptLength, logProbs,
            firstToken, clock.Elapsed - firstToken);
        yield return new GenerationUpdate(null, tail, null, result);
    }

    private void Step(Tensor embeds, KvCache cache, float[] row)
    {
        using var scope = NewDisposeScope();
        Tensor logits = model.Forward(embeds, cache, lastOnly: true);
        NativeTensor.CopyTo(logits, row);
    }

    private void StepToken(int id, KvCache cache, float[] row)
    {
        using var threads = DecodeThreadScope.Enter();
        model.DecodeToken(id, cache, row);
    }
}
