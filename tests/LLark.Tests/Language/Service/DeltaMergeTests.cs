using System.Text;
using System.Threading.Channels;
using LLark.Language.Engine.Generation;
using LLark.Language.Engine.Serving;
using LLark.Language.Service;

namespace LLark.Tests.Language.Service;

/// <summary>A stream whose writes fall behind the decode steps sends the waiting tokens in one delta, all of them, in order.</summary>
public sealed class DeltaMergeTests
{
    private static (GenerationFeed Feed, ChannelWriter<GenerationUpdate> Writer) Feed()
    {
        var channel = Channel.CreateUnbounded<GenerationUpdate>();
        return (new GenerationFeed(channel.Reader, CancellationToken.None), channel.Writer);
    }

    [Fact]
    public void WaitingUpdatesJoinOneDeltaUpToTheFinalOne()
    {
        (GenerationFeed feed, ChannelWriter<GenerationUpdate> writer) = Feed();
        var result = new GenerationResult([5, 6, 7, 8], "abcd", FinishReason.Length, 3, [-0.5f, -1f, -1.5f, -2f], TimeSpan.Zero, TimeSpan.Zero);
        writer.TryWrite(new GenerationUpdate(6, "b", -1f, null));
        writer.TryWrite(new GenerationUpdate(7, "", -1.5f, null));
        writer.TryWrite(new GenerationUpdate(8, "cd", -2f, result));
        var text = new StringBuilder();

        var delta = LanguageGrpcService.Merge(new GenerationUpdate(5, "a", -0.5f, null), feed, ids: true, logProbs: true, text, out GenerationUpdate last);
        Assert.NotNull(delta);
        Assert.Equal("abcd", delta.Text);
        Assert.Equal([5u, 6u, 7u, 8u], delta.TokenIds);
        Assert.Equal([-0.5f, -1f, -1.5f, -2f], delta.Logprobs);
        Assert.Same(result, last.Result);
        Assert.False(feed.TryRead(out _));
    }

    [Fact]
    public void AReaderThatKeepsUpSendsOneTokenADeltaAndNothingWhenThereIsNothingToSay()
    {
        (GenerationFeed feed, ChannelWriter<GenerationUpdate> writer) = Feed();
        var text = new StringBuilder();
        var one = LanguageGrpcService.Merge(new GenerationUpdate(9, "x", null, null), feed, ids: false, logProbs: false, text, out GenerationUpdate last);
        Assert.Equal("x", one!.Text);
        Assert.Empty(one.TokenIds);
        Assert.Null(last.Result);

        // Text held back (half a character, a possible stop string) and no ids asked for: no message.
        Assert.Null(LanguageGrpcService.Merge(new GenerationUpdate(10, "", null, null), feed, ids: false, logProbs: false, text, out _));
        // With ids asked for, the token is sent with empty text.
        writer.TryWrite(new GenerationUpdate(12, "", null, null));
        var held = LanguageGrpcService.Merge(new GenerationUpdate(11, "", null, null), feed, ids: true, logProbs: false, text, out _);
        Assert.Equal("", held!.Text);
        Assert.Equal([11u, 12u], held.TokenIds);
    }
}
