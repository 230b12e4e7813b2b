using LLark.Common;
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

/// <summary>Produces no text: for runs that only want token ids (benchmarks, raw-id prompts without a tokenizer).</summary>
public sealed class NullTextDecoder : ITokenTextDecoder
{
    public static readonly NullTextDecoder Instance = new();

    private NullTextDecoder() { }

    public string Push(int tokenId) => "";

    public string Flush() => "";
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
        using (TorchThreadScope.ForDecode())
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
        if (promptEmbeds.dim() != 3 || promptEmbeds.shape[0] != 1)
            throw new InvalidRequestException("prompt", "prompt embeddings must be [1, tokens, hidden]");
        int promptLength = (int)promptEmbeds.shape[1];
        if (promptLength == 0) throw new InvalidRequestException("prompt", "the prompt is empty");
        int context = model.Config.MaxPositionEmbeddings;
        if (promptLength >= context) throw new ContextLengthException(promptLength + 1, context);

        var sequence = new GenerationSequence(promptIds, promptLength, model.Config.EosTokenIds, text, options);
        var row = new float[model.Config.VocabSize];
        using KvCache cache = NewCache(Math.Min(context, promptLength + options.MaxNewTokens));
        sequence.Start();
        if (cancellationToken.IsCancellationRequested)
        {
            yield return sequence.Finish(FinishReason.Cancelled);
            yield break;
        }
        Step(promptEmbeds, cache, row);
        while (true)
        {
            GenerationUpdate update = sequence.Accept(row, roomLeft: cache.Length < cache.Capacity, cancellationToken);
            yield return update;
            if (sequence.IsFinished) yield break;
            StepToken(sequence.LastToken, cache, row);
        }
    }

    /// <summary>
    /// The cache, zeroed by libtorch on one thread, as the prompt's embedding lookup is: an OpenMP team would go on
    /// spinning after such small work and take the cores from the managed prefill that follows.
    /// </summary>
    private KvCache NewCache(int capacity)
    {
        using (TorchThreadScope.ForDecode()) return model.NewCache(capacity);
    }

    private void Step(Tensor embeds, KvCache cache, float[] row)
    {
        using var scope = NewDisposeScope();
        Tensor logits = model.Forward(embeds, cache, lastOnly: true);
        NativeTensor.CopyTo(logits, row);
    }

    private void StepToken(int id, KvCache cache, float[] row)
    {
        using var threads = TorchThreadScope.ForDecode();
        model.DecodeToken(id, cache, row);
    }
}
