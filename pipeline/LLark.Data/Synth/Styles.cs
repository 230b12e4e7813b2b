namespace LLark.Data.Synth;

/// <summary>A General MIDI melodic instrument: 0-based program, its GM name, and the register it plays a melody in.</summary>
public sealed record GmInstrument(int Program, string Name, int Low, int High)
{
    public int Center => (Low + High) / 2;
}

/// <summary>The General MIDI programs the synthesiser draws from (GM level 1 names).</summary>
public static class Gm
{
    public static readonly GmInstrument Piano = new(0, "Acoustic Grand Piano", 60, 84);
    public static readonly GmInstrument ElectricPiano = new(4, "Electric Piano 1", 60, 82);
    public static readonly GmInstrument Harpsichord = new(6, "Harpsichord", 62, 86);
    public static readonly GmInstrument Vibraphone = new(11, "Vibraphone", 60, 84);
    public static readonly GmInstrument Marimba = new(12, "Marimba", 60, 84);
    public static readonly GmInstrument DrawbarOrgan = new(16, "Drawbar Organ", 60, 82);
    public static readonly GmInstrument ChurchOrgan = new(19, "Church Organ", 60, 82);
    public static readonly GmInstrument Accordion = new(21, "Accordion", 62, 84);
    public static readonly GmInstrument Harmonica = new(22, "Harmonica", 62, 84);
    public static readonly GmInstrument NylonGuitar = new(24, "Acoustic Guitar (nylon)", 55, 79);
    public static readonly GmInstrument SteelGuitar = new(25, "Acoustic Guitar (steel)", 55, 79);
    public static readonly GmInstrument JazzGuitar = new(26, "Electric Guitar (jazz)", 55, 79);
    public static readonly GmInstrument CleanGuitar = new(27, "Electric Guitar (clean)", 55, 79);
    public static readonly GmInstrument OverdrivenGuitar = new(29, "Overdriven Guitar", 55, 79);
    public static readonly GmInstrument DistortionGuitar = new(30, "Distortion Guitar", 52, 76);
    public static readonly GmInstrument AcousticBass = new(32, "Acoustic Bass", 28, 50);
    public static readonly GmInstrument FingerBass = new(33, "Electric Bass (finger)", 28, 50);
    public static readonly GmInstrument PickBass = new(34, "Electric Bass (pick)", 28, 50);
    public static readonly GmInstrument SynthBass = new(38, "Synth Bass 1", 28, 50);
    public static readonly GmInstrument Violin = new(40, "Violin", 62, 88);
    public static readonly GmInstrument Cello = new(42, "Cello", 36, 60);
    public static readonly GmInstrument Contrabass = new(43, "Contrabass", 28, 48);
    public static readonly GmInstrument Harp = new(46, "Orchestral Harp", 55, 84);
    public static readonly GmInstrument Strings = new(48, "String Ensemble 1", 60, 84);
    public static readonly GmInstrument Trumpet = new(56, "Trumpet", 60, 82);
    public static readonly GmInstrument Trombone = new(57, "Trombone", 48, 70);
    public static readonly GmInstrument FrenchHorn = new(60, "French Horn", 53, 74);
    public static readonly GmInstrument BrassSection = new(61, "Brass Section", 58, 80);
    public static readonly GmInstrument AltoSax = new(65, "Alto Sax", 58, 80);
    public static readonly GmInstrument TenorSax = new(66, "Tenor Sax", 52, 74);
    public static readonly GmInstrument Oboe = new(68, "Oboe", 62, 84);
    public static readonly GmInstrument Clarinet = new(71, "Clarinet", 55, 82);
    public static readonly GmInstrument Flute = new(73, "Flute", 67, 91);
    public static readonly GmInstrument PanFlute = new(75, "Pan Flute", 65, 88);
    public static readonly GmInstrument SquareLead = new(80, "Lead 1 (square)", 62, 86);
    public static readonly GmInstrument SawLead = new(81, "Lead 2 (sawtooth)", 62, 86);
    public static readonly GmInstrument NewAgePad = new(88, "Pad 1 (new age)", 55, 79);
    public static readonly GmInstrument WarmPad = new(89, "Pad 2 (warm)", 55, 79);
    public static readonly GmInstrument Banjo = new(105, "Banjo", 60, 82);
    public static readonly GmInstrument Fiddle = new(110, "Fiddle", 62, 88);

    /// <summary>The name written for the drum kit (GM channel 10) in a clip's instrument list.</summary>
    public const string DrumsName = "Drums";
}

public enum DrumPattern
{
    None,
    Backbeat,
    Rock,
    FourOnTheFloor,
    Swing,
    Waltz,
    Bossa,
    Ballad,
}

public enum BassPattern
{
    None,
    Roots,
    Walking,
    Eighths,
    Bossa,
    Waltz,
}

/// <summary>The accompaniment's texture.</summary>
public enum Texture
{
    BlockChords,
    Arpeggios,
    Syncopated,
    Sparse,
}

/// <summary>
/// A style: what the synthesiser may choose for a clip of it. Genre is the broad label ("jazz"), style the narrower
/// one ("jazz swing"); every progression starts on the tonic.
/// </summary>
public sealed record StyleDefinition(
    string Name,
    string Genre,
    int MinBpm,
    int MaxBpm,
    IReadOnlyList<int> Beats,
    double MinorProbability,
    IReadOnlyList<GmInstrument> Melody,
    IReadOnlyList<GmInstrument> Harmony,
    IReadOnlyList<GmInstrument> Bass,
    IReadOnlyList<Texture> Textures,
    DrumPattern Drums,
    double DrumsProbability,
    BassPattern BassPattern,
    bool Swing,
    IReadOnlyList<string> MajorProgressions,
    IReadOnlyList<string> MinorProgressions);

public static class Styles
{
    private static readonly string[] TriadMajor = ["I IV V I", "I V vi IV", "I vi IV V", "I IV I V", "I iii IV V", "I ii V I", "I IV vi V"];
    private static readonly string[] TriadMinor = ["i iv V i", "i VI III VII", "i VII VI V", "i iv VII III", "i VI iv V", "i iv i V", "i III iv V"];

    public static readonly IReadOnlyList<StyleDefinition> All =
    [
        new("pop", "pop", 90, 128, [4], 0.35,
            [Gm.Piano, Gm.ElectricPiano, Gm.CleanGuitar, Gm.AltoSax, Gm.SquareLead, Gm.Flute, Gm.Vibraphone],
            [Gm.Piano, Gm.CleanGuitar, Gm.ElectricPiano, Gm.WarmPad],
            [Gm.FingerBass, Gm.PickBass], [Texture.BlockChords, Texture.Syncopated, Texture.Arpeggios], DrumPattern.Backbeat, 1.0,
            BassPattern.Roots, false, TriadMajor, TriadMinor),
        new("rock", "rock", 100, 160, [4], 0.45,
            [Gm.OverdrivenGuitar, Gm.DistortionGuitar, Gm.DrawbarOrgan, Gm.SawLead],
            [Gm.OverdrivenGuitar, Gm.CleanGuitar, Gm.DrawbarOrgan, Gm.Piano],
            [Gm.PickBass, Gm.FingerBass], [Texture.BlockChords, Texture.Syncopated], DrumPattern.Rock, 1.0,
            BassPattern.Eighths, false, ["I IV V I", "I V IV I", "I vi IV V", "I IV I V"], ["i VII VI VII", "i iv VII i", "i VI VII i", "i VII VI V"]),
        new("jazz swing", "jazz", 110, 180, [4], 0.3,
            [Gm.TenorSax, Gm.AltoSax, Gm.Trumpet, Gm.Vibraphone, Gm.Piano, Gm.JazzGuitar, Gm.Clarinet, Gm.Trombone],
            [Gm.Piano, Gm.JazzGuitar, Gm.ElectricPiano],
            [Gm.AcousticBass], [Texture.Syncopated, Texture.BlockChords], DrumPattern.Swing, 1.0,
            BassPattern.Walking, true, ["Imaj7 vi7 ii7 V7", "Imaj7 IVmaj7 iii7 vi7 ii7 V7", "Imaj7 ii7 V7 Imaj7", "Imaj7 vi7 IVmaj7 V7"],
            ["i7 iv7 V7 i7", "i7 iiø7 V7 i7", "i7 VImaj7 iiø7 V7", "i7 iv7 VII7 IIImaj7"]),
        new("waltz", "classical", 84, 168, [3], 0.4,
            [Gm.Violin, Gm.Accordion, Gm.Flute, Gm.Piano, Gm.Clarinet, Gm.Oboe],
            [Gm.Piano, Gm.Strings, Gm.Harp, Gm.Accordion],
            [Gm.Contrabass, Gm.Cello, Gm.AcousticBass], [Texture.BlockChords, Texture.Arpeggios], DrumPattern.Waltz, 0.4,
            BassPattern.Waltz, false, TriadMajor, TriadMinor),
        new("ballad", "pop", 60, 80, [4], 0.45,
            [Gm.Piano, Gm.Violin, Gm.Flute, Gm.ElectricPiano, Gm.TenorSax, Gm.NylonGuitar, Gm.FrenchHorn],
            [Gm.Piano, Gm.Strings, Gm.WarmPad, Gm.NewAgePad, Gm.Harp],
            [Gm.FingerBass, Gm.AcousticBass], [Texture.Arpeggios, Texture.Sparse, Texture.BlockChords], DrumPattern.Ballad, 0.6,
            BassPattern.Roots, false, TriadMajor, TriadMinor),
        new("bossa nova", "latin", 110, 145, [4], 0.4,
            [Gm.Flute, Gm.TenorSax, Gm.AltoSax, Gm.Vibraphone, Gm.NylonGuitar, Gm.Trumpet],
            [Gm.NylonGuitar, Gm.Piano, Gm.ElectricPiano],
            [Gm.AcousticBass, Gm.FingerBass], [Texture.Syncopated, Texture.Arpeggios], DrumPattern.Bossa, 1.0,
            BassPattern.Bossa, false, ["Imaj7 ii7 V7 Imaj7", "Imaj7 vi7 ii7 V7", "Imaj7 IVmaj7 iii7 vi7"], ["i7 iv7 V7 i7", "i7 iiø7 V7 i7", "i7 VImaj7 iiø7 V7"]),
        new("electronic", "electronic", 115, 140, [4], 0.6,
            [Gm.SawLead, Gm.SquareLead, Gm.ElectricPiano, Gm.Marimba],
            [Gm.WarmPad, Gm.NewAgePad, Gm.SawLead, Gm.ElectricPiano],
            [Gm.SynthBass], [Texture.Arpeggios, Texture.Syncopated, Texture.Sparse], DrumPattern.FourOnTheFloor, 1.0,
            BassPattern.Eighths, false, ["I V vi IV", "I vi IV V", "I IV vi V"], ["i VI III VII", "i VII VI VII", "i iv VI V", "i VI VII i"]),
        new("folk", "folk", 80, 128, [3, 4], 0.35,
            [Gm.Fiddle, Gm.Harmonica, Gm.Banjo, Gm.Flute, Gm.PanFlute, Gm.Accordion, Gm.SteelGuitar],
            [Gm.SteelGuitar, Gm.NylonGuitar, Gm.Accordion, Gm.Banjo],
            [Gm.AcousticBass], [Texture.BlockChords, Texture.Arpeggios, Texture.Sparse], DrumPattern.Backbeat, 0.4,
            BassPattern.Roots, false, TriadMajor, TriadMinor),
        new("classical", "classical", 60, 126, [3, 4], 0.45,
            [Gm.Violin, Gm.Flute, Gm.Oboe, Gm.Clarinet, Gm.FrenchHorn, Gm.Harpsichord, Gm.Piano, Gm.Trumpet, Gm.ChurchOrgan],
            [Gm.Strings, Gm.Harpsichord, Gm.Piano, Gm.Harp],
            [Gm.Cello, Gm.Contrabass], [Texture.Arpeggios, Texture.BlockChords, Texture.Sparse], DrumPattern.None, 0.0,
            BassPattern.Roots, false, ["I IV V I", "I vi ii V", "I IV ii V", "I V vi iii IV I IV V"], ["i iv V i", "i VI iv V", "i iv VII III VI iv V i"]),
    ];

    public static StyleDefinition Find(string name) =>
        All.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown style '{name}'; styles are {string.Join(", ", All.Select(s => s.Name))}", nameof(name));
}
