using LLark.Evaluation;

namespace LLark.Tests.Evaluation;

public sealed class AnswerParsingTests
{
    [Theory]
    [InlineData("F# minor", "F# minor")]
    [InlineData("The key is F sharp minor.", "F# minor")]
    [InlineData("This piece is in F-sharp minor", "F# minor")]
    [InlineData("It is in G♭ major", "F# major")]
    [InlineData("Gb", "F# major")]
    [InlineData("B-flat major", "Bb major")]
    [InlineData("B flat major, with a bright feel", "Bb major")]
    [InlineData("It sounds like Bb", "Bb major")]
    [InlineData("A min", "A minor")]
    [InlineData("A minor", "A minor")]
    [InlineData("The song is in a minor.", "A minor")]
    [InlineData("Am", "A minor")]
    [InlineData("The chords center on C#m throughout", "C# minor")]
    [InlineData("E♭ Major", "Eb major")]
    [InlineData("It is written in D# major", "Eb major")]
    [InlineData("Key: Cb major", "B major")]
    [InlineData("E# minor", "F minor")]
    [InlineData("B# major", "C major")]
    [InlineData("A bright pop song in D minor", "D minor")]
    [InlineData("This song is in a minor key, specifically E minor.", "E minor")]
    [InlineData("The key of this song is C.", "C major")]
    [InlineData("It's in the key of G, and it feels minor overall", "G minor")]
    [InlineData("C major, modulating to G major later", "C major")]
    [InlineData("Ebm", "Eb minor")]
    [InlineData("d major", "D major")]
    [InlineData("F aeolian", "F minor")]
    [InlineData("Abmaj", "Ab major")]
    [InlineData("KEY: A MINOR", "A minor")]
    public void KeyIsReadFromFreeText(string answer, string expected)
    {
        Parsed<MusicKey>? parsed = KeyAnswerParser.Parse(answer);
        Assert.NotNull(parsed);
        Assert.Equal(expected, parsed.Value.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("I am not sure about that.")]
    [InlineData("It has a minor feel.")]
    [InlineData("A great track with a major hook")]
    [InlineData("Bach wrote it.")]
    [InlineData("The mix peaks at 80 dB.")]
    [InlineData("A fast song")]
    public void TextWithoutAKeyParsesToNothing(string answer) => Assert.Null(KeyAnswerParser.Parse(answer));

    [Theory]
    [InlineData("F# minor", 6, KeyMode.Minor)]
    [InlineData("Bb major", 10, KeyMode.Major)]
    [InlineData("Db major", 1, KeyMode.Major)]
    [InlineData("c minor", 0, KeyMode.Minor)]
    [InlineData("G#m", 8, KeyMode.Minor)]
    public void ManifestLabelsParse(string label, int tonic, KeyMode mode) => Assert.Equal(new MusicKey(tonic, mode), MusicKey.ParseLabel(label));

    [Theory]
    [InlineData("X")]
    [InlineData("unknown")]
    [InlineData("H major")]
    [InlineData(null)]
    public void BadLabelsAreRefused(string? label) => Assert.Null(MusicKey.ParseLabel(label));

    [Theory]
    [InlineData("120", 120)]
    [InlineData("The tempo is about 92.5 BPM.", 92.5)]
    [InlineData("Around 120-125 beats per minute", 120)]
    [InlineData("It moves at 140bpm", 140)]
    [InlineData("In 3/4 at 90 BPM", 3)]
    public void TempoIsTheFirstNumber(string answer, double expected) => Assert.Equal(expected, TempoAnswerParser.Parse(answer)!.Value);

    [Theory]
    [InlineData("Quite fast, I would say.")]
    [InlineData("one hundred and twenty")]
    public void TempoWithoutDigitsIsUnparsed(string answer) => Assert.Null(TempoAnswerParser.Parse(answer));

    [Theory]
    [InlineData("an acoustic guitar", new[] { 24, 25 })]
    [InlineData("The melody is played by an Acoustic Guitar (steel).", new[] { 25 })]
    [InlineData("A piano carries the tune", new[] { 0, 1, 2, 3, 4, 5 })]
    [InlineData("electric piano", new[] { 4, 5 })]
    [InlineData("I hear a tenor saxophone", new[] { 64, 65, 66, 67 })]
    [InlineData("Tenor Sax", new[] { 66 })]
    [InlineData("the violin", new[] { 40 })]
    [InlineData("A lead guitar with distortion", new[] { 24, 25, 26, 27, 28, 29, 30 })]
    [InlineData("the drums drive it, but the melody is on flute", new[] { GeneralMidi.Drums })]
    [InlineData("Steel drums", new[] { 114 })]
    [InlineData("a double bass", new[] { 32, 43 })]
    [InlineData("Mostly strings.", new[] { 48, 49, 44, 45 })]
    [InlineData("a trumpet", new[] { 56, 59 })]
    [InlineData("a synthesizer lead", new[] { 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95 })]
    public void InstrumentMentionsResolveToGeneralMidiPrograms(string text, int[] programs)
    {
        InstrumentMatcher.Mention? m = InstrumentMatcher.Find(text);
        Assert.NotNull(m);
        Assert.Equal(programs.Order(), m.Programs.Order());
    }

    [Fact]
    public void InstrumentAgreementIsByProgramOrByFamily()
    {
        InstrumentMatcher.Mention steel = InstrumentMatcher.ResolveLabel("Acoustic Guitar (steel)")!;
        Assert.Equal([25], steel.Programs);
        Assert.True(InstrumentMatcher.SameInstrument(steel, InstrumentMatcher.Find("an acoustic guitar")));
        Assert.True(InstrumentMatcher.SameInstrument(steel, InstrumentMatcher.Find("guitar")));
        Assert.False(InstrumentMatcher.SameInstrument(steel, InstrumentMatcher.Find("an electric guitar")));
        Assert.True(InstrumentMatcher.SameFamily(steel, InstrumentMatcher.Find("an electric guitar")));
        Assert.False(InstrumentMatcher.SameFamily(steel, InstrumentMatcher.Find("a cello")));
        Assert.False(InstrumentMatcher.SameInstrument(steel, InstrumentMatcher.Find("I cannot tell.")));
        Assert.Null(InstrumentMatcher.Find("The lead is very loud and full of noise."));
        Assert.Equal([GeneralMidi.Drums], InstrumentMatcher.ResolveLabel("Drums")!.Programs);
    }

    [Theory]
    [InlineData("This is a jazz piece.", "jazz")]
    [InlineData("I'd call it Hip-Hop", "hip hop")]
    [InlineData("hiphop", "hip hop")]
    [InlineData("Classic R&B.", "r&b")]
    [InlineData("Sounds like rock, maybe with some blues", "rock")]
    [InlineData("Definitely Classical", "classical")]
    public void GenreIsTheFirstLabelMentioned(string answer, string expected)
    {
        var parser = new GenreAnswerParser(["jazz", "hip hop", "r&b", "rock", "blues", "classical", "pop"]);
        Assert.Equal(expected, parser.Parse(answer)?.Value);
    }

    [Theory]
    [InlineData("A very popular style.")]
    [InlineData("It rocks.")]
    [InlineData("No idea.")]
    public void GenreNeedsWholeWords(string answer) => Assert.Null(new GenreAnswerParser(["pop", "rock"]).Parse(answer));
}
