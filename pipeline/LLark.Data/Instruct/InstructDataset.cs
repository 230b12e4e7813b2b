namespace LLark.Data.Instruct;

public sealed record InstructOptions
{
    public long Seed { get; init; }
    public int PerClip { get; init; } = 8;
    public double ConversationRate { get; init; } = 0.3;
    /// <summary>The share of one-fact questions asked for, and answered with, the bare value (see <see cref="InstructionGenerator.ForClip"/>).</summary>
    public double ShortAnswerRate { get; init; }
}

public sealed record InstructResult(
    IReadOnlyList<InstructionPair> Pairs,
    int Clips,
    IReadOnlyList<string> SkippedClips,
    IReadOnlyList<JsonLineError> ManifestErrors)
{
    public int Count(string family) => Pairs.Count(p => p.Family == family);

    public int Conversations => Pairs.Where(p => p.Conversation is not null).Select(p => p.Conversation).Distinct().Count();
}

/// <summary>Turns a manifest into <c>pairs.jsonl</c>, by templates or by an LLM.</summary>
public static class InstructDataset
{
    public static InstructResult FromTemplates(Manifest manifest, InstructOptions options)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(options);
        var pairs = new List<InstructionPair>();
        var skipped = new List<string>();
        foreach (ClipRecord clip in manifest.Clips)
        {
            IReadOnlyList<InstructionPair> made = InstructionGenerator.ForClip(clip, options.Seed, options.PerClip, options.ConversationRate, options.ShortAnswerRate);
            if (made.Count == 0) skipped.Add($"{clip.ClipId}: no labels to ask about");
            pairs.AddRange(made);
        }
        return new InstructResult(pairs, manifest.Clips.Count, skipped, manifest.Errors);
    }

    /// <summary>Asks the LLM for every clip, <paramref name="parallel"/> at a time; pairs keep the manifest's order.</summary>
    public static async Task<InstructResult> FromLlmAsync(Manifest manifest, LlmClient client, int parallel = 4, Action<string>? log = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(client);
        var replies = new LlmReply[manifest.Clips.Count];
        int done = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, manifest.Clips.Count),
            new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallel), CancellationToken = cancel },
            async (i, ct) =>
            {
                replies[i] = await client.AskAsync(manifest.Clips[i], ct).ConfigureAwait(false);
                int n = Interlocked.Increment(ref done);
                LlmReply r = replies[i];
                log?.Invoke(r.Problem is null
                    ? $"[{n}/{manifest.Clips.Count}] {manifest.Clips[i].ClipId}: {r.Pairs.Count} pairs{(r.DroppedItems > 0 ? $", {r.DroppedItems} items dropped" : "")}"
                    : $"[{n}/{manifest.Clips.Count}] {manifest.Clips[i].ClipId}: skipped after {r.Attempts} attempts: {r.Problem}");
            }).ConfigureAwait(false);
        var pairs = new List<InstructionPair>();
        var skipped = new List<string>();
        for (int i = 0; i < replies.Length; i++)
        {
            if (replies[i].Problem is not null) skipped.Add($"{manifest.Clips[i].ClipId}: {replies[i].Problem}");
            pairs.AddRange(replies[i].Pairs);
        }
        return new InstructResult(pairs, manifest.Clips.Count, skipped, manifest.Errors);
    }
}
