using NAudio.Midi;

namespace LLark.Data.Synth;

/// <summary>What was chosen for one clip; everything the composer and the labels follow from.</summary>
public sealed record SongSpec
{
    public required string Id { get; init; }
    public required int Index { get; init; }
    public required StyleDefinition Style { get; init; }
    public required MusicalKey Key { get; init; }
    public required int Bpm { get; init; }
    public required int BeatsPerBar { get; init; }
    public required Texture Texture { get; init; }
    public required GmInstrument Melody { get; init; }
    public required GmInstrument Harmony { get; init; }
    public GmInstrument? Bass { get; init; }
    public required bool Drums { get; init; }
    public required string Progression { get; init; }
    public required double Seconds { get; init; }
    /// <summary>The seed the notes are drawn from (derived from the dataset seed and the clip's index).</summary>
    public required int NoteSeed { get; init; }

    public string Meter => $"{BeatsPerBar}/4";

    /// <summary>Instrument names, melody first, then harmony, bass and drums (each once).</summary>
    public IReadOnlyList<string> InstrumentNames
    {
        get
        {
            var names = new List<string> { Melody.Name };
            if (Harmony.Name != Melody.Name) names.Add(Harmony.Name);
            if (Bass is not null && !names.Contains(Bass.Name)) names.Add(Bass.Name);
            if (Drums) names.Add(Gm.DrumsName);
            return names;
        }
    }
}

/// <summary>One note: MIDI channel (0-based; 9 is GM percussion), pitch, start and length in ticks, velocity.</summary>
public readonly record struct Note(int Channel, int Pitch, long Tick, long Duration, int Velocity);

/// <summary>A composed clip: its notes, and the chords that sound from each change, in seconds from the start.</summary>
public sealed class Song
{
    public const int TicksPerBeat = 480;
    public const int MelodyChannel = 0, HarmonyChannel = 1, BassChannel = 2, DrumChannel = 9;

    internal Song(SongSpec spec, IReadOnlyList<Note> notes, IReadOnlyList<Chord> barChords, long totalTicks)
    {
        Spec = spec;
        Notes = notes;
        BarChords = barChords;
        TotalTicks = totalTicks;
    }

    public SongSpec Spec { get; }
    public IReadOnlyList<Note> Notes { get; }

    /// <summary>The chord of every composed bar, including the bar past the clip's end that keeps the cut from a tail.</summary>
    public IReadOnlyList<Chord> BarChords { get; }
    public long TotalTicks { get; }

    /// <summary>The tempo written to the file; the labels' times follow it exactly.</summary>
    public int MicrosecondsPerBeat => (int)Math.Round(60_000_000.0 / Spec.Bpm);

    public double SecondsPerTick => MicrosecondsPerBeat / 1e6 / TicksPerBeat;

    public double BarSeconds => Spec.BeatsPerBar * TicksPerBeat * SecondsPerTick;

    public double TotalSeconds => TotalTicks * SecondsPerTick;

    /// <summary>Chord changes heard within the clip (consecutive equal chords merged), times rounded to milliseconds.</summary>
    public IReadOnlyList<TimedChord> ChordLabels(double startOffsetSeconds = 0)
    {
        var labels = new List<TimedChord>();
        for (int bar = 0; bar < BarChords.Count; bar++)
        {
            double time = bar * BarSeconds - startOffsetSeconds;
            if (time >= Spec.Seconds) break;
            string symbol = BarChords[bar].Symbol(Spec.Key);
            if (labels.Count > 0 && labels[^1].Chord == symbol) continue;
            labels.Add(new TimedChord(Math.Round(Math.Max(0, time), 3), symbol));
        }
        return labels;
    }

    /// <summary>A standard MIDI file (type 1) with the channels <paramref name="channels"/> keeps (all when null).</summary>
    public void WriteMidi(string path, Func<int, bool>? channels = null)
    {
        var events = new MidiEventCollection(1, TicksPerBeat);
        events.AddTrack();
        events.AddEvent(new TempoEvent(MicrosecondsPerBeat, 0), 0);
        events.AddEvent(new TimeSignatureEvent(0, Spec.BeatsPerBar, 2, 24, 8), 0);
        events.AddEvent(new MetaEvent(MetaEventType.EndTrack, 0, TotalTicks), 0);
        var programs = new (int Channel, GmInstrument? Instrument, int Volume, int Pan)[]
        {
            (MelodyChannel, Spec.Melody, 110, 64),
            (HarmonyChannel, Spec.Harmony, 92, 50),
            (BassChannel, Spec.Bass, 100, 64),
            (DrumChannel, null, 96, 64),
        };
        foreach ((int channel, GmInstrument? instrument, int volume, int pan) in programs)
        {
            if (channels is not null && !channels(channel)) continue;
            Note[] notes = Notes.Where(n => n.Channel == channel).ToArray();
            if (notes.Length == 0) continue;
            int track = events.Tracks;
            events.AddTrack();
            int midiChannel = channel + 1;
            if (instrument is not null) events.AddEvent(new PatchChangeEvent(0, midiChannel, instrument.Program), track);
            events.AddEvent(new ControlChangeEvent(0, midiChannel, MidiController.MainVolume, volume), track);
            events.AddEvent(new ControlChangeEvent(0, midiChannel, MidiController.Pan, pan), track);
            foreach (Note n in notes.OrderBy(n => n.Tick).ThenBy(n => n.Pitch))
            {
                var on = new NoteOnEvent(n.Tick, midiChannel, n.Pitch, n.Velocity, (int)n.Duration);
                events.AddEvent(on, track);
                events.AddEvent(on.OffEvent!, track);
            }
            events.AddEvent(new MetaEvent(MetaEventType.EndTrack, 0, TotalTicks), track);
        }
        events.PrepareForExport();
        MidiFile.Export(path, events);
    }
}

/// <summary>Writes the notes of a <see cref="SongSpec"/>: deterministic from its seed.</summary>
public static class Composer
{
    private const int Eighth = Song.TicksPerBeat / 2;

    private static readonly int[][] Rhythm4 = [[2, 2, 2, 2], [3, 1, 2, 2], [2, 1, 1, 2, 2], [4, 2, 2], [2, 2, 4], [1, 1, 1, 1, 2, 2], [3, 3, 2], [6, 2], [2, 2, 2, 1, 1]];
    private static readonly int[][] Rhythm3 = [[2, 2, 2], [3, 1, 2], [4, 2], [2, 1, 1, 2], [1, 1, 2, 2], [2, 4]];
    private static readonly int[][] Sparse4 = [[4, 4], [8], [6, 2], [4, 2, 2]];
    private static readonly int[][] Sparse3 = [[6], [4, 2], [2, 4]];
    private static readonly int[] MelodySteps = [-2, -1, -1, -1, 0, 1, 1, 1, 2, 2, -3, 3];

    public static Song Compose(SongSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var rng = new Random(spec.NoteSeed);
        int beats = spec.BeatsPerBar;
        long barTicks = beats * Song.TicksPerBeat;
        double secondsPerTick = Math.Round(60_000_000.0 / spec.Bpm) / 1e6 / Song.TicksPerBeat;
        double barSeconds = barTicks * secondsPerTick;
        int visibleBars = Math.Max(1, (int)Math.Ceiling(spec.Seconds / barSeconds - 1e-9));
        int totalBars = visibleBars + 1;
        // The key is established by the tonic at both ends: the last bar heard (and the one before it when little of
        // the last is heard) holds the tonic chord.
        double lastFraction = (spec.Seconds - (visibleBars - 1) * barSeconds) / barSeconds;
        int tonicFrom = visibleBars == 1 ? 0 : lastFraction < 0.5 && visibleBars > 2 ? visibleBars - 2 : visibleBars - 1;
        IReadOnlyList<Chord> progression = Roman.Progression(spec.Progression, spec.Key);
        var barChords = new Chord[totalBars];
        for (int bar = 0; bar < totalBars; bar++) barChords[bar] = bar >= tonicFrom && bar > 0 ? progression[0] : progression[bar % progression.Count];

        var notes = new List<Note>();
        Harmony(spec, barChords, barTicks, rng, notes);
        if (spec.Bass is not null) BassLine(spec, barChords, barTicks, rng, notes);
        if (spec.Drums) DrumPart(spec, totalBars, barTicks, rng, notes);
        MelodyLine(spec, barChords, barTicks, (long)Math.Ceiling(spec.Seconds / secondsPerTick), rng, notes);
        return new Song(spec, notes, barChords, totalBars * barTicks);
    }

    private static long Swing(SongSpec spec, long tick) =>
        spec.Style.Swing && tick % Song.TicksPerBeat == Eighth ? tick + Song.TicksPerBeat / 6 : tick;

    private static int Nearest(int pitchClass, int center)
    {
        int p = center - (((center - pitchClass) % 12) + 12) % 12;
        return center - p > 6 ? p + 12 : p;
    }

    private static int[] Voicing(Chord chord, int center) =>
        chord.PitchClasses.Select(pc => Nearest(pc, center)).Order().ToArray();

    private static bool IsGuitar(GmInstrument i) => i.Program is >= 24 and <= 31 or 105;

    private static void Harmony(SongSpec spec, Chord[] barChords, long barTicks, Random rng, List<Note> notes)
    {
        int beats = spec.BeatsPerBar;
        int center = Math.Clamp(spec.Melody.Center - 12, 50, 60);
        for (int bar = 0; bar < barChords.Length; bar++)
        {
            long start = bar * barTicks;
            int[] voice = Voicing(barChords[bar], center);
            switch (spec.Texture)
            {
                case Texture.BlockChords:
                    for (int beat = beats == 3 && spec.Style.BassPattern == BassPattern.Waltz ? 1 : 0; beat < beats; beat++)
                        Strum(spec, voice, start + beat * Song.TicksPerBeat, Song.TicksPerBeat * 9 / 10, beat == 0 ? 66 : 58, notes);
                    break;
                case Texture.Arpeggios:
                {
                    int[] line = [.. voice, voice[0] + 12, .. voice.Skip(1).Reverse()];
                    bool up = rng.Next(2) == 0;
                    for (int e = 0; e < beats * 2; e++)
                    {
                        int pitch = up ? line[e % line.Length] : line[(line.Length - e % line.Length) % line.Length];
                        notes.Add(new Note(Song.HarmonyChannel, pitch, Swing(spec, start + e * Eighth), Eighth * 19 / 10, e % 2 == 0 ? 62 : 54));
                    }
                    break;
                }
                case Texture.Syncopated:
                {
                    (int At, int Length)[] hits = beats == 3 ? [(0, 2), (3, 1), (4, 2)] : [(0, 3), (3, 3), (6, 2)];
                    foreach ((int at, int length) in hits)
                        Strum(spec, voice, Swing(spec, start + at * Eighth), length * Eighth * 9 / 10, at == 0 ? 66 : 60, notes);
                    break;
                }
                default:
                    Strum(spec, voice, start, barTicks - 20, 60, notes);
                    break;
            }
        }
    }

    private static void Strum(SongSpec spec, int[] voice, long tick, long length, int velocity, List<Note> notes)
    {
        int stagger = IsGuitar(spec.Harmony) ? 12 : 0;
        for (int i = 0; i < voice.Length; i++)
            notes.Add(new Note(Song.HarmonyChannel, voice[i], tick + i * stagger, length - i * stagger, velocity));
    }

    private static void BassLine(SongSpec spec, Chord[] barChords, long barTicks, Random rng, List<Note> notes)
    {
        const int center = 38;
        int beats = spec.BeatsPerBar;
        long beat = Song.TicksPerBeat;
        for (int bar = 0; bar < barChords.Length; bar++)
        {
            long start = bar * barTicks;
            Chord chord = barChords[bar];
            int root = Nearest(chord.Root, center);
            int fifth = root + chord.Intervals[2] > 50 ? root + chord.Intervals[2] - 12 : root + chord.Intervals[2];
            void Add(long at, long length, int pitch, int velocity) =>
                notes.Add(new Note(Song.BassChannel, pitch, start + at, length * 9 / 10, velocity));
            switch (beats == 3 && spec.Style.BassPattern != BassPattern.None ? BassPattern.Waltz : spec.Style.BassPattern)
            {
                case BassPattern.Waltz:
                    Add(0, beat, bar % 2 == 0 ? root : fifth, 92);
                    break;
                case BassPattern.Walking:
                {
                    Chord next = barChords[Math.Min(bar + 1, barChords.Length - 1)];
                    int nextRoot = Nearest(next.Root, center);
                    int third = root + chord.Intervals[1];
                    // A scale step next to the coming root leads into it.
                    int[] approaches = rng.Next(2) == 0 ? [nextRoot + 2, nextRoot - 1, nextRoot - 2, nextRoot + 1] : [nextRoot - 1, nextRoot + 2, nextRoot - 2, nextRoot + 1];
                    int approach = approaches.First(p => spec.Key.ScalePitchClasses.Contains(p % 12));
                    int[] walk = beats == 4 ? [root, third, fifth, approach] : [root, third, approach];
                    for (int b = 0; b < beats; b++) Add(b * beat, beat, walk[b], b == 0 ? 90 : 80);
                    break;
                }
                case BassPattern.Eighths:
                    for (int e = 0; e < beats * 2; e++) Add(e * Eighth, Eighth, root, e % 2 == 0 ? 92 : 76);
                    break;
                case BassPattern.Bossa:
                    Add(0, 3 * Eighth, root, 90);
                    Add(3 * Eighth, Eighth, fifth, 76);
                    Add(4 * Eighth, 3 * Eighth, fifth, 86);
                    Add(7 * Eighth, Eighth, root, 76);
                    break;
                default:
                    if (beats == 4)
                    {
                        Add(0, 2 * beat, root, 92);
                        Add(2 * beat, 2 * beat, rng.Next(3) == 0 ? fifth : root, 84);
                    }
                    else
                    {
                        Add(0, 3 * beat, root, 92);
                    }
                    break;
            }
        }
    }

    private const int Kick = 36, SideStick = 37, Snare = 38, Clap = 39, ClosedHat = 42, PedalHat = 44, OpenHat = 46, Crash = 49, Ride = 51;

    private static void DrumPart(SongSpec spec, int totalBars, long barTicks, Random rng, List<Note> notes)
    {
        int beats = spec.BeatsPerBar;
        DrumPattern pattern = beats == 3 ? DrumPattern.Waltz : spec.Style.Drums;
        bool extraKick = rng.Next(2) == 0;
        for (int bar = 0; bar < totalBars; bar++)
        {
            long start = bar * barTicks;
            void Hit(int drum, long at, int velocity) => notes.Add(new Note(Song.DrumChannel, drum, start + at, Eighth / 2, velocity));
            long b = Song.TicksPerBeat;
            switch (pattern)
            {
                case DrumPattern.Waltz:
                    Hit(Kick, 0, 100);
                    for (int beat = 1; beat < beats; beat++) { Hit(ClosedHat, beat * b, 70); Hit(SideStick, beat * b, 60); }
                    Hit(ClosedHat, 0, 75);
                    break;
                case DrumPattern.FourOnTheFloor:
                    for (int beat = 0; beat < beats; beat++)
                    {
                        Hit(Kick, beat * b, 112);
                        Hit(OpenHat, beat * b + Eighth, 70);
                        if (beat % 2 == 1) Hit(Clap, beat * b, 96);
                    }
                    break;
                case DrumPattern.Swing:
                    for (int beat = 0; beat < beats; beat++)
                    {
                        Hit(Ride, beat * b, beat % 2 == 0 ? 88 : 80);
                        Hit(Kick, beat * b, 58);
                        if (beat % 2 == 1) { Hit(PedalHat, beat * b, 78); Hit(Ride, beat * b + b * 2 / 3, 66); }
                    }
                    break;
                case DrumPattern.Bossa:
                    foreach (int e in new[] { 0, 3, 4, 7 }) Hit(Kick, e * Eighth, e % 4 == 0 ? 96 : 72);
                    foreach (int e in bar % 2 == 0 ? new[] { 0, 3, 6 } : [2, 4]) Hit(SideStick, e * Eighth, 82);
                    for (int e = 0; e < 8; e++) Hit(ClosedHat, e * Eighth, e % 2 == 0 ? 72 : 52);
                    break;
                default:
                {
                    bool rock = pattern == DrumPattern.Rock, ballad = pattern == DrumPattern.Ballad;
                    Hit(Kick, 0, ballad ? 84 : 108);
                    Hit(Kick, 2 * b, ballad ? 80 : 104);
                    if (extraKick && !ballad) Hit(Kick, 5 * Eighth, 90);
                    Hit(ballad ? SideStick : Snare, b, ballad ? 74 : rock ? 110 : 96);
                    Hit(ballad ? SideStick : Snare, 3 * b, ballad ? 74 : rock ? 110 : 96);
                    for (int e = 0; e < 8; e++) Hit(ClosedHat, e * Eighth, e % 2 == 0 ? (rock ? 88 : 74) : (ballad ? 48 : 58));
                    if (rock && bar == 0) Hit(Crash, 0, 96);
                    break;
                }
            }
        }
    }

    private static void MelodyLine(SongSpec spec, Chord[] barChords, long barTicks, long clipTicks, Random rng, List<Note> notes)
    {
        MusicalKey key = spec.Key;
        GmInstrument instrument = spec.Melody;
        int tonic = Nearest(key.Tonic, instrument.Center - 3);
        int Pitch(int degree, Chord chord)
        {
            int octave = (int)Math.Floor(degree / 7.0), step = degree - octave * 7;
            int pitch = tonic + 12 * octave + key.Steps[step];
            // Over a chord with the raised leading tone (V in minor) the melody raises it too.
            if (key.Mode == Mode.Minor && step == 6 && chord.PitchClasses.Contains((key.Tonic + 11) % 12)) pitch++;
            return pitch;
        }
        int lowDegree = -4, highDegree = 9;
        while (Pitch(lowDegree, barChords[0]) < instrument.Low) lowDegree++;
        while (Pitch(highDegree, barChords[0]) + 1 > instrument.High) highDegree--; // + 1: a raised leading tone
        bool sparse = spec.Texture == Texture.Sparse;
        int[][] rhythms = spec.BeatsPerBar == 3 ? sparse ? Sparse3 : Rhythm3 : sparse ? Sparse4 : Rhythm4;
        int degree = 0;
        var line = new List<Note>();
        for (int bar = 0; bar < barChords.Length; bar++)
        {
            Chord chord = barChords[bar];
            int[] rhythm = rhythms[rng.Next(rhythms.Length)];
            int at = 0;
            for (int i = 0; i < rhythm.Length; i++)
            {
                long tick = bar * barTicks + at * Eighth;
                at += rhythm[i];
                if (bar > 0 || i > 0)
                {
                    degree += MelodySteps[rng.Next(MelodySteps.Length)];
                    if (degree < lowDegree) degree = lowDegree + (lowDegree - degree);
                    if (degree > highDegree) degree = highDegree - (degree - highDegree);
                    degree = Math.Clamp(degree, lowDegree, highDegree);
                }
                if (i == 0)
                {
                    // Downbeats land on a chord tone.
                    foreach (int offset in new[] { 0, 1, -1, 2, -2, 3, -3 })
                    {
                        int candidate = Math.Clamp(degree + offset, lowDegree, highDegree);
                        if (chord.PitchClasses.Contains(Pitch(candidate, chord) % 12)) { degree = candidate; break; }
                    }
                }
                else if (rng.Next(10) == 0 && tick < clipTicks - barTicks)
                {
                    continue; // a rest
                }
                long start = Swing(spec, tick);
                long length = rhythm[i] * Eighth - (start - tick);
                int velocity = Math.Min(120, 96 + rng.Next(12) + (i == 0 ? 6 : 0));
                line.Add(new Note(Song.MelodyChannel, Pitch(degree, chord), start, length * 92 / 100, velocity));
            }
        }
        // The note sounding when the clip ends is the tonic, held to the end of the file.
        int last = line.FindLastIndex(n => n.Tick < clipTicks);
        Note final = line[last];
        int finalPitch = Nearest(key.Tonic, final.Pitch);
        if (finalPitch < instrument.Low) finalPitch += 12;
        if (finalPitch > instrument.High) finalPitch -= 12;
        line[last] = final with { Pitch = finalPitch, Duration = barChords.Length * barTicks - final.Tick - 20 };
        line.RemoveRange(last + 1, line.Count - last - 1);
        notes.AddRange(line);
    }
}
