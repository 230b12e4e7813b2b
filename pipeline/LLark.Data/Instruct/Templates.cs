namespace LLark.Data.Instruct;

/// <summary>
/// Every piece of text the template generator writes: question phrasings per task, answer phrasings, the words for
/// tempi, keys, meters, instruments, moods and scenes, and the LLM system prompt. Placeholders are {name}; the
/// generator fills them from a clip's facts and uses a template only when the clip has every fact it names.
/// The evaluation's held-out questions (<see cref="Reserved"/>) must never be produced.
/// </summary>
public static class Templates
{
    /// <summary>Held-out evaluation questions; the generator never emits these exact forms.</summary>
    public static readonly IReadOnlyList<string> Reserved =
    [
        "What is the tempo of this song in BPM?",
        "Which key is this piece in?",
        "What instrument plays the melody here?",
        "What genre would you call this?",
    ];

    /// <summary>Optional openings put before a question now and then.</summary>
    public static readonly IReadOnlyList<string> LeadIns =
    [
        "Listen to this clip. ", "Here's a short excerpt. ", "Quick question about this track: ", "I'm listening to this right now. ",
        "Take a listen. ", "From what you hear, ", "Based on the audio, ", "Hey, ", "Please help me out: ", "Music question: ",
    ];

    /// <summary>
    /// Requests for a brief answer, put after a one-fact question (or before it, those ending in ": "); the answer is
    /// then the bare value.
    /// </summary>
    public static readonly IReadOnlyList<string> BriefCues =
    [
        "Answer in a word or two.", "Keep it short.", "Just the answer, please.", "No need to explain.", "Short answer, please.",
        "Briefly: ", "In a few words: ", "One-line answer: ",
    ];

    /// <summary>Requests for a brief tempo answer: the answer is then "N BPM".</summary>
    public static readonly IReadOnlyList<string> BriefTempoCues =
    [
        "Just the number, please.", "Only the BPM.", "Give me just the number.", "Answer with a number.", "Keep it short.",
        "Just the BPM: ", "Briefly: ", "Number only: ",
    ];

    public static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> Questions = new Dictionary<string, IReadOnlyList<string>>
    {
        ["tempo"] =
        [
            "How fast is this song?", "What's the tempo?", "What tempo is this track at?", "How many beats per minute is this?",
            "Can you tell me the BPM?", "What BPM would you put this at?", "Roughly how fast is the beat here?", "What is the speed of this music in beats per minute?",
            "At what tempo does this piece move?", "Estimate the tempo of this recording.", "What's the BPM of this clip?", "How quick is the pulse of this music?",
            "If I wanted to match this with a metronome, what should I set it to?", "What tempo should a DJ expect from this track?", "Give me the tempo of this excerpt.",
            "How many beats are there in a minute of this music?", "Is this fast or slow? Give me a number.", "What would you say the tempo is, in BPM?",
            "Tell me the beats per minute of this piece.", "What's the pace of this song?", "Could you estimate how fast this is playing?",
            "What metronome marking fits this music?", "Measure the tempo of this track for me.", "At how many BPM is this tune?",
            "How fast is the beat in this recording?", "What is the tempo, roughly?", "Figure out the tempo of this clip, please.",
            "What speed is this tune played at?", "How many BPM does this music have?", "Name the tempo of this excerpt.",
        ],
        ["key"] =
        [
            "What key is this in?", "What's the key of this song?", "Can you identify the key of this track?", "What key is this music written in?",
            "Which key does this tune use?", "Tell me the key of this piece.", "What is the tonal center of this music?", "What key would I need to play along?",
            "Identify the key and mode of this recording.", "What's the home key here?", "In what key is this clip?", "Which key signature fits this music?",
            "Name the key of this excerpt.", "What key and mode is this track?", "Could you work out the key of this song?", "What key does this piece sit in?",
            "What is the key of this recording?", "Figure out the key for me, please.", "Which tonic and mode does this music have?", "What key would you transcribe this in?",
            "If I wanted to sing along, what key is it?", "What's the tonality of this clip?", "Determine the key of this track.", "What key is the melody in?",
            "What key centre does this music revolve around?", "Work out the key of this excerpt for me.", "What key is this tune played in?", "Key of this song, please?",
        ],
        ["mode"] =
        [
            "Is this in a major or a minor key?", "Major or minor?", "Does this piece sound major or minor?", "Is the tonality here major or minor?",
            "Would you say this music is in major or minor?", "Is this song written in a major key?", "Is this track in minor?", "What mode is this music in, major or minor?",
            "Does this clip use a major or minor scale?", "Tell me whether this is major or minor.", "Is the harmony of this piece major or minor?", "Major key or minor key here?",
            "Can you tell if this is in a major or minor key?", "Is this excerpt major or minor?", "Which mode, major or minor, does this piece use?",
        ],
        ["meter"] =
        [
            "What's the time signature?", "What meter is this in?", "Is this in 3/4 or 4/4?", "How would you count this music?", "What time signature does this song use?",
            "How many beats are in each bar?", "Is this a waltz-time piece or is it in common time?", "What's the meter of this track?", "Can you tell me the time signature of this clip?",
            "How is this piece counted: in threes or in fours?", "What is the metre of this excerpt?", "How many beats per measure does this have?", "Name the time signature of this tune.",
            "What meter would you notate this in?", "Does this music feel like it's in 3 or in 4?", "What's the beat grouping here?", "Identify the meter of this recording.",
            "Is this in triple or duple/quadruple time?", "Count the beats in a bar of this song for me.", "Which time signature fits this music best?",
        ],
        ["instruments"] =
        [
            "What instruments can you hear?", "Which instruments are playing?", "List the instruments in this track.", "What instruments are in this recording?",
            "Who's playing here? Name the instruments.", "What is the instrumentation of this piece?", "Tell me which instruments you hear in this clip.", "Can you name the instruments in this song?",
            "What instruments make up this arrangement?", "Break down the instrumentation for me.", "Which instruments does this excerpt feature?", "What's playing in this music?",
            "Identify every instrument in this recording.", "Describe the instruments used here.", "What sounds and instruments are in this mix?", "What's the lineup of instruments on this track?",
            "What instruments would I need to perform this?", "Which instruments can be heard in this excerpt?", "Name all the instruments in this clip.", "What instruments does this piece use?",
            "Give me a list of the instruments playing.", "Which instruments are featured in this tune?", "Tell me about the instrumentation.", "What are the instruments in this arrangement?",
        ],
        ["melody_instrument"] =
        [
            "Which instrument carries the tune?", "What's playing the lead line?", "Which instrument has the melody?", "What instrument is the lead here?",
            "Who carries the main melody in this clip?", "Which instrument plays the main tune?", "What is the lead instrument?", "Which instrument sings the melody, so to speak?",
            "What instrument is out front in this track?", "What plays the top line in this arrangement?", "Which instrument takes the solo line here?", "Name the lead instrument of this piece.",
            "Which instrument is playing the theme?", "What instrument has the main melodic part?", "Which instrument is the focus of this recording?", "The tune is played by which instrument?",
            "What is carrying the melody in this excerpt?", "Which instrument stands out with the melody?", "Identify the melody instrument in this track.", "What's the lead voice in this music?",
        ],
        ["drums"] =
        [
            "Are there drums in this track?", "Does this recording have percussion?", "Is there a drum kit playing?", "Can you hear any drums?",
            "Is this piece accompanied by drums?", "Does this music have a beat from a drum kit?", "Are drums part of this arrangement?", "Is there any percussion in this clip?",
            "Do you hear a drummer here?", "Does this song include drums?", "Is the rhythm section using drums?", "Are there any drums or is it drumless?",
        ],
        ["chords"] =
        [
            "What chords are played?", "What's the chord progression?", "Can you give me the chords of this clip?", "Which chords does this piece use?",
            "Tell me the chord progression of this song.", "What chords would I play to accompany this?", "Write out the chords for this excerpt.", "What harmony is used here?",
            "What are the chord changes in this track?", "List the chords in order.", "Transcribe the chords of this recording.", "Which chords go by in this clip?",
            "What progression do the chords follow?", "Can you work out the chord changes?", "What are the chords, in the order they appear?", "Give me a chord chart for this music.",
            "What chords is the accompaniment playing?", "Describe the harmonic progression.", "What's the harmony doing in this excerpt?", "Name the chords you hear.",
        ],
        ["chord_at"] =
        [
            "What chord is playing at {time} seconds?", "Which chord sounds at the {time}-second mark?", "What's the harmony at {time} s?", "At {time} seconds in, what chord do you hear?",
            "Name the chord at {time} seconds.", "What chord is under the melody at {time} seconds?", "Around {time} seconds, which chord is sounding?", "Which chord is heard {time} seconds into the clip?",
            "What chord does the accompaniment play at {time} seconds?", "Tell me the chord at time {time} s.", "What's the chord {time} seconds into this excerpt?", "Identify the chord playing at {time} seconds.",
        ],
        ["first_chord"] =
        [
            "What chord does this start on?", "What's the opening chord?", "Which chord does the music begin with?", "Name the first chord you hear.",
            "What chord opens this clip?", "How does the harmony begin?", "What's the first chord of the progression?", "Which chord starts the excerpt?",
            "What chord is played at the very beginning?", "Which chord kicks things off here?",
        ],
        ["genre"] =
        [
            "What genre is this?", "What style of music is this?", "How would you classify this music?", "What kind of music is this?",
            "Which genre does this track belong to?", "What's the style of this clip?", "Can you tell me the genre of this song?", "How would you describe the genre?",
            "What type of music are we listening to?", "Which musical style is this piece in?", "Name the genre of this recording.", "What genre label fits this music best?",
            "If you had to file this in a record store, where would it go?", "What category of music is this?", "Classify this excerpt by genre.", "What musical tradition does this come from?",
            "What's the genre of this excerpt?", "Which style best describes this music?", "Is this jazz, rock, pop, classical, or something else?", "What genre would a streaming service tag this as?",
            "Identify the style of this tune.", "What sort of music does this sound like?", "Tell me the genre of this piece.", "What music genre is playing?",
        ],
        ["tags"] =
        [
            "Give me some tags for this clip.", "What tags describe this music?", "Tag this track.", "List a few keywords that describe this recording.",
            "What descriptive tags would you give this song?", "Suggest tags for this excerpt.", "How would you tag this music in a library?", "Which labels fit this clip?",
            "What keywords come to mind for this music?", "Tag this piece with a few descriptors.",
        ],
        ["tempo_feel"] =
        [
            "Is this fast or slow?", "Would you call this an up-tempo or a slow piece?", "Is the tempo here quick or relaxed?", "How would you describe the pace of this music?",
            "Does this feel rushed, relaxed or somewhere in between?", "Is this a slow song or a fast one?", "How energetic is the tempo of this clip?", "Is this music quick or leisurely?",
            "What's the pace like: laid-back or brisk?", "Describe the speed of this track in words.",
        ],
        ["caption"] =
        [
            "Describe this clip.", "Can you describe this music?", "Give me a description of this track.", "Write a caption for this audio.",
            "What does this sound like? Describe it.", "Describe what you hear.", "Tell me about this piece of music.", "Write a short paragraph describing this recording.",
            "How would you describe this song to a friend?", "Summarize this music in a few sentences.", "Describe the music in this excerpt in detail.", "Caption this clip for a music library.",
            "Give a detailed description of this audio clip.", "What's going on in this music? Describe it.", "Describe the sound, style and feel of this track.", "Write a description of this piece for someone who can't hear it.",
            "Please describe this music.", "Tell me what this clip sounds like.", "Could you write a brief description of this song?", "Describe this piece: instruments, tempo, key, mood.",
            "Paint a picture of this music in words.", "What would you write about this track in a liner note?", "Give me an overview of this recording.", "Describe the musical content of this clip.",
            "Write a one-paragraph summary of what this music sounds like.", "How would a music critic describe this excerpt?", "What are the main characteristics of this music?", "Describe this audio in a few sentences.",
            "Talk me through what's happening in this piece.", "Describe this track's sound and atmosphere.",
        ],
        ["scene"] =
        [
            "What kind of scene would this music fit?", "Where would this music work well in a film?", "What activity would this be good background music for?", "Imagine a setting for this music. What is it?",
            "What situation does this track suit?", "If this were a soundtrack, what would be happening on screen?", "When would you play this music?", "What occasion would this song be right for?",
            "Suggest a place or moment that suits this clip.", "Which kind of video would this be good for?", "What mood or setting does this music evoke, and why?", "What would you use this track for?",
            "Picture a scene that goes with this music.", "For what kind of event would this be a fitting soundtrack?", "If you were a music supervisor, where would you place this cue?",
        ],
        ["play_along"] =
        [
            "How could I play along with this?", "I want to jam along on my instrument. What should I know?", "What do I need to know to improvise over this?", "Give me tips for playing along with this track.",
            "How would I accompany this music?", "What scale and rhythm should I use to play with this?", "I'm a guitarist. How do I join in with this clip?", "Help me play along: key, chords, count-in?",
            "How should I practice along with this recording?", "What's the best way to improvise over this excerpt?", "If I join on keyboard, what should I play?", "Explain how to jam with this piece.",
        ],
        ["bedtime_story"] =
        [
            "Write a short bedtime story that fits this music.", "Tell me a bedtime story inspired by this clip.", "Make up a little story to go with this music for a child.", "Could you write a bedtime story that matches the mood of this track?",
            "Invent a short story that could be read over this music.", "Tell a gentle story that goes with this piece.", "What story does this music tell? Write it as a bedtime tale.", "Write a children's story to accompany this song.",
            "Compose a brief fairy tale that suits this recording.", "Spin a short story that matches the feel of this clip.",
        ],
        ["style_change"] =
        [
            "What would you change to make this sound like {target}?", "How could this be rearranged as {target}?", "What would it take to turn this into {target}?", "If I wanted {a_target} version of this, what should I change?",
            "How would this track sound reimagined as {target}?", "Suggest changes that would make this piece {target}.", "Give me a plan to convert this music into {target}.", "How do I rework this clip into {target}?",
            "What's different between this and {target}, and how would I bridge the gap?", "Remix idea: make this {target}. What do I change?", "What arrangement changes would make this fit {target}?", "Transform this into {target}: what's needed?",
        ],
        ["dance"] =
        [
            "Could you dance to this? What kind of dance?", "What dance would suit this music?", "Is this danceable? How would you move to it?", "Which dance style fits this track?",
            "What kind of dancing goes with this song?", "Would this work on a dance floor? What dance?", "How would a dancer count and move to this?", "Suggest a dance for this clip.",
        ],
    };

    /// <summary>Short follow-up questions for later turns of a conversation.</summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> FollowUps = new Dictionary<string, IReadOnlyList<string>>
    {
        ["tempo"] = ["And how fast is it?", "What about the tempo?", "And the BPM?", "How many beats per minute, then?", "OK, and the speed?"],
        ["key"] = ["And what key is it in?", "What about the key?", "Which key, then?", "And the key?", "Do you know the key too?"],
        ["meter"] = ["And the time signature?", "How is it counted?", "What about the meter?", "Is it in three or four?"],
        ["instruments"] = ["Which instruments are playing?", "And what instruments do you hear?", "Who's playing on it?", "What's the instrumentation?"],
        ["melody_instrument"] = ["And which instrument has the tune?", "Who plays the melody?", "What's the lead instrument?"],
        ["chords"] = ["What chords does it use?", "And the chord progression?", "Which chords go by?"],
        ["genre"] = ["And what style is it?", "What genre, would you say?", "How would you classify it?"],
        ["mode"] = ["Is that major or minor?", "Major or minor, then?"],
        ["scene"] = ["Where would you use a piece like this?", "What would it suit?", "So what scene fits it?"],
        ["play_along"] = ["How would I play along with it?", "Any tips for jamming with it?"],
        ["caption"] = ["Can you describe it as a whole?", "Sum it up in a paragraph?", "So how would you describe it overall?"],
    };

    public static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> Answers = new Dictionary<string, IReadOnlyList<string>>
    {
        ["tempo"] =
        [
            "The tempo is {tempo}.", "It's at {tempo}.", "This moves at {tempo}.", "I'd put it at {tempo}.", "The beat runs at {tempo}.",
            "It sits at {tempo}, a {feel} pace.", "{Tempo} - a {feel} tempo.", "The pulse is {tempo}.", "It plays at {tempo}; set a metronome to {bpm}.",
            "You can count it at {tempo}.", "The track is {tempo}, which feels {feel}.", "That's {tempo}.",
        ],
        ["key"] =
        [
            "It's in {key}.", "The key is {key}.", "This piece is in {key}.", "It's written in {key}, with {tonic} as the home note.", "The music sits in {key}.",
            "{Key}.", "I hear it in {key}.", "The tonal centre is {tonic}, and the mode is {mode}: {key}.", "It's in the key of {key}.", "This is in {key}.",
        ],
        ["mode"] =
        [
            "It's in a {mode} key ({key}).", "{Mode} - the key is {key}.", "The tonality is {mode}; specifically {key}.", "It sounds {mode}, in {key}.",
            "This is {mode}: it's in {key}.",
        ],
        ["meter"] =
        [
            "It's in {meter}.", "The time signature is {meter}.", "It's counted in {meter_words}.", "The meter is {meter}, so {beats} beats to a bar.",
            "This is in {meter} - {meter_words}.", "Count it in {beats}: the time signature is {meter}.", "{Meter_words}, {meter}.", "It's {meter}, with {beats} beats per bar.",
        ],
        ["instruments"] =
        [
            "I can hear {instruments}.", "The instruments are {instruments}.", "This features {instruments}.", "It's played on {instruments}.", "The lineup is {instruments}.",
            "You'll hear {instruments}.", "There's {instruments}.", "The arrangement uses {instruments}.", "{Instruments}.", "It's an arrangement for {instruments}.",
        ],
        ["melody_instrument"] =
        [
            "The melody is played by {melody}.", "{Melody} carries the tune.", "It's {melody} on the lead line.", "The lead instrument is {melody}.", "{Melody} has the melody.",
            "The tune is on {melody}.", "That's {melody} playing the main line.", "{Melody} is out front with the melody.",
        ],
        ["drums_yes"] =
        [
            "Yes, there's a drum kit keeping the beat.", "Yes - drums are part of the arrangement.", "Yes, you can hear drums throughout.", "There are drums, yes, marking the pulse.",
            "Yes, a drum kit plays along.",
        ],
        ["drums_no"] =
        [
            "No, there are no drums; the pulse comes from the other instruments.", "No drums here - it's {instruments} only.", "No, this one is drumless.", "There's no drum kit in this clip.",
            "No, it has no percussion; {instruments} keep the rhythm themselves.",
        ],
        ["chords"] =
        [
            "The chords are {chords}.", "It goes {chords}.", "The progression is {chords}.", "The harmony moves {chords}.", "I hear {chords}.",
            "Here's the sequence: {chords}.", "The changes are {chords}.", "{Chords}.",
        ],
        ["chords_timed"] =
        [
            "{timed_chords}.", "The chord changes are: {timed_chords}.", "Here they are with times: {timed_chords}.",
        ],
        ["chord_at"] =
        [
            "At {time} seconds it's {chord}.", "That's {chord}.", "{chord} is sounding there.", "The chord at {time} s is {chord}.", "You'll hear {chord} at that point.",
            "It's {chord} at {time} seconds.",
        ],
        ["first_chord"] =
        [
            "It opens on {chord}.", "The first chord is {chord}.", "It begins with {chord}.", "{chord} starts it off.", "The music starts on {chord}.",
        ],
        ["genre"] =
        [
            "It's {genre} music.", "This is {genre}.", "I'd call it {genre}.", "It sounds like {genre} to me.", "The style is {genre}.", "It falls under {genre}.",
            "That's {genre}.", "Definitely {genre}.", "It's {a_genre} piece.", "It's {a_genre} track.", "I'd file it under {genre}.",
        ],
        ["tags"] =
        [
            "Tags: {tags}.", "I'd tag it {tags}.", "Some fitting tags: {tags}.", "{tags}.", "Keywords: {tags}.",
        ],
        ["tempo_feel"] =
        [
            "It's {feel}, at {tempo}.", "The pace is {feel} - {tempo}.", "I'd call it {feel}; it runs at {tempo}.", "It feels {feel}, around {bpm} beats per minute.",
            "{Feel}: {tempo}.",
        ],
    };

    /// <summary>Words for a tempo by range (upper bound inclusive, BPM).</summary>
    public static readonly IReadOnlyList<(double UpTo, string[] Words)> TempoFeel =
    [
        (72, ["slow", "unhurried", "gentle", "leisurely"]),
        (96, ["relaxed", "easygoing", "moderate", "laid-back"]),
        (120, ["steady", "moderate", "mid-tempo", "comfortable"]),
        (144, ["lively", "upbeat", "bright", "energetic"]),
        (double.PositiveInfinity, ["brisk", "fast", "driving", "quick"]),
    ];

    /// <summary>Ways of writing a tempo. {bpm} is the number, {feel} a word from <see cref="TempoFeel"/>.</summary>
    public static readonly IReadOnlyList<string> TempoPhrases =
    [
        "{bpm} BPM", "about {bpm} beats per minute", "roughly {bpm} BPM", "{bpm} beats per minute", "{a_feel} {bpm} bpm", "around {bpm} BPM",
        "approximately {bpm} BPM", "{bpm} bpm", "close to {bpm} beats per minute", "{a_feel} {bpm} beats per minute",
    ];

    public static readonly IReadOnlyDictionary<string, string[]> MeterWords = new Dictionary<string, string[]>
    {
        ["4/4"] = ["common time", "four beats to the bar", "a steady four", "four-four time"],
        ["3/4"] = ["three beats to the bar", "waltz time", "three-four time", "a lilting three"],
        ["2/4"] = ["two beats to the bar", "two-four time"],
        ["6/8"] = ["two dotted-quarter beats to the bar", "six-eight time"],
    };

    /// <summary>Plain words for instrument labels (General MIDI names and common dataset labels), as noun phrases with an article.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> InstrumentWords = new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase)
    {
        ["Acoustic Grand Piano"] = ["a piano", "an acoustic piano", "a grand piano"],
        ["Piano"] = ["a piano", "an acoustic piano"],
        ["Electric Piano 1"] = ["an electric piano", "a Rhodes-style electric piano"],
        ["Harpsichord"] = ["a harpsichord"],
        ["Vibraphone"] = ["a vibraphone", "vibes"],
        ["Marimba"] = ["a marimba"],
        ["Drawbar Organ"] = ["an organ", "a drawbar organ", "a Hammond-style organ"],
        ["Church Organ"] = ["a church organ", "a pipe organ"],
        ["Accordion"] = ["an accordion"],
        ["Harmonica"] = ["a harmonica"],
        ["Acoustic Guitar (nylon)"] = ["an acoustic guitar", "a nylon-string guitar", "a classical guitar"],
        ["Acoustic Guitar (steel)"] = ["an acoustic guitar", "a steel-string acoustic guitar"],
        ["Electric Guitar (jazz)"] = ["a jazz guitar", "an electric guitar", "a hollow-body electric guitar"],
        ["Electric Guitar (clean)"] = ["a clean electric guitar", "an electric guitar"],
        ["Overdriven Guitar"] = ["an overdriven electric guitar", "a crunchy electric guitar"],
        ["Distortion Guitar"] = ["a distorted electric guitar", "a heavy electric guitar"],
        ["Acoustic Bass"] = ["an upright bass", "a double bass", "an acoustic bass"],
        ["Electric Bass (finger)"] = ["an electric bass", "a bass guitar"],
        ["Electric Bass (pick)"] = ["an electric bass played with a pick", "a bass guitar"],
        ["Synth Bass 1"] = ["a synth bass", "a synthesizer bass"],
        ["Violin"] = ["a violin"],
        ["Viola"] = ["a viola"],
        ["Cello"] = ["a cello"],
        ["Contrabass"] = ["a double bass", "a contrabass"],
        ["Bass"] = ["a bass"],
        ["Orchestral Harp"] = ["a harp", "a concert harp"],
        ["String Ensemble 1"] = ["a string section", "strings", "a string ensemble"],
        ["Trumpet"] = ["a trumpet"],
        ["Trombone"] = ["a trombone"],
        ["French Horn"] = ["a French horn", "a horn"],
        ["Horn"] = ["a French horn", "a horn"],
        ["Brass Section"] = ["a brass section", "brass"],
        ["Alto Sax"] = ["an alto saxophone", "an alto sax"],
        ["Tenor Sax"] = ["a tenor saxophone", "a tenor sax"],
        ["Oboe"] = ["an oboe"],
        ["Bassoon"] = ["a bassoon"],
        ["Clarinet"] = ["a clarinet"],
        ["Flute"] = ["a flute"],
        ["Pan Flute"] = ["a pan flute", "pan pipes"],
        ["Lead 1 (square)"] = ["a square-wave synth lead", "a synth lead"],
        ["Lead 2 (sawtooth)"] = ["a sawtooth synth lead", "a synth lead"],
        ["Pad 1 (new age)"] = ["a synth pad", "an airy synth pad"],
        ["Pad 2 (warm)"] = ["a warm synth pad", "a synth pad"],
        ["Banjo"] = ["a banjo"],
        ["Fiddle"] = ["a fiddle"],
        ["Drums"] = ["drums", "a drum kit"],
        ["Guitar"] = ["a guitar"],
        ["Voice"] = ["a voice", "a singer"],
        ["Vocals"] = ["vocals", "a singer"],
    };

    /// <summary>How a genre or style label is said in a sentence ("swing jazz", "bossa nova"), with an article form for "a ... piece".</summary>
    public static readonly IReadOnlyDictionary<string, string[]> GenreWords = new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase)
    {
        ["jazz swing"] = ["swing jazz", "jazz swing", "swinging jazz"],
        ["bossa nova"] = ["bossa nova", "Brazilian bossa nova"],
        ["waltz"] = ["waltz", "classical waltz"],
        ["ballad"] = ["ballad", "pop ballad"],
        ["electronic"] = ["electronic", "electronic dance"],
        ["classical"] = ["classical"],
        ["folk"] = ["folk", "acoustic folk"],
        ["rock"] = ["rock"],
        ["pop"] = ["pop"],
        ["latin"] = ["Latin"],
        ["jazz"] = ["jazz"],
    };

    /// <summary>Mood words by (major?, fast?); then extra words a style adds.</summary>
    public static readonly IReadOnlyDictionary<(bool Major, bool Fast), string[]> Moods = new Dictionary<(bool, bool), string[]>
    {
        [(true, true)] = ["joyful", "bright", "cheerful", "energetic", "optimistic", "playful"],
        [(true, false)] = ["warm", "tender", "peaceful", "serene", "gentle", "content"],
        [(false, true)] = ["urgent", "dramatic", "intense", "restless", "driving", "tense"],
        [(false, false)] = ["melancholic", "wistful", "sombre", "reflective", "bittersweet", "brooding"],
    };

    public static readonly IReadOnlyDictionary<string, string[]> StyleMoods = new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase)
    {
        ["pop"] = ["catchy", "polished"], ["rock"] = ["gritty", "punchy"], ["jazz swing"] = ["sophisticated", "swinging"], ["waltz"] = ["graceful", "elegant"],
        ["ballad"] = ["intimate", "heartfelt"], ["bossa nova"] = ["breezy", "laid-back"], ["electronic"] = ["hypnotic", "pulsing"], ["folk"] = ["rustic", "homely"],
        ["classical"] = ["elegant", "stately"],
    };

    /// <summary>Scenes by (major?, fast?), and scenes a style suggests.</summary>
    public static readonly IReadOnlyDictionary<(bool Major, bool Fast), string[]> Scenes = new Dictionary<(bool, bool), string[]>
    {
        [(true, true)] = ["a summer road trip", "a birthday party", "a morning workout", "a montage of friends at the beach", "a sunny farmers' market", "a travel vlog"],
        [(true, false)] = ["a quiet Sunday breakfast", "a sunset walk on the beach", "a wedding slideshow", "reading by a window", "a calm yoga session", "a family photo album"],
        [(false, true)] = ["a chase scene in a thriller", "a night drive through the city", "a tense sports final", "a video-game boss level", "a heist montage", "a storm rolling in"],
        [(false, false)] = ["a rainy afternoon indoors", "a farewell scene in a film", "a lonely walk through autumn leaves", "a documentary about a lost city", "late-night journaling", "a memory flashback"],
    };

    public static readonly IReadOnlyDictionary<string, string[]> StyleScenes = new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase)
    {
        ["pop"] = ["a TV commercial", "a shopping-mall playlist"], ["rock"] = ["a stadium warm-up", "a skateboarding video"],
        ["jazz swing"] = ["a dimly lit cocktail bar", "a 1940s dance hall"], ["waltz"] = ["a ballroom dance", "a period-drama ball"],
        ["ballad"] = ["a slow dance at a wedding", "the closing credits of a drama"], ["bossa nova"] = ["a café terrace by the sea", "a relaxed dinner party"],
        ["electronic"] = ["a late-night dance floor", "a futuristic city flyover"], ["folk"] = ["a campfire singalong", "a village fair"],
        ["classical"] = ["a costume drama", "an art-gallery opening"],
    };

    /// <summary>What defines a style, for "how would this become X" answers: target tempo range, rhythm, instruments, harmony.</summary>
    public static readonly IReadOnlyDictionary<string, (int Low, int High, string Rhythm, string Instruments, string Harmony)> StyleRecipes =
        new Dictionary<string, (int, int, string, string, string)>(StringComparer.OrdinalIgnoreCase)
        {
            ["rock"] = (110, 150, "a loud backbeat: kick on 1 and 3, a hard snare on 2 and 4, driving eighth-note hi-hats", "overdriven electric guitars and a picked electric bass", "simple triads and power chords"),
            ["jazz swing"] = (120, 200, "a swung ride-cymbal pattern with the hi-hat on 2 and 4", "a saxophone or trumpet lead, piano comping and a walking upright bass", "seventh chords and ii-V-I movements"),
            ["bossa nova"] = (110, 140, "a gentle bossa groove with a cross-stick clave and a syncopated bass", "nylon-string guitar, flute or saxophone and a soft upright bass", "major-seventh and minor-seventh chords"),
            ["electronic"] = (120, 130, "a four-on-the-floor kick with off-beat hi-hats and claps on 2 and 4", "synth leads, a warm pad and a synth bass", "repeating loops of three or four chords"),
            ["waltz"] = (84, 170, "three beats to the bar, bass on the downbeat and chords on beats two and three", "strings, piano or accordion", "simple tonic, subdominant and dominant changes"),
            ["classical"] = (60, 120, "no drums, with the rhythm carried by arpeggios and the bass line", "strings, woodwinds such as flute or oboe, and harpsichord or piano", "functional harmony with clear cadences"),
            ["folk"] = (80, 120, "strummed acoustic guitar with light percussion or none", "acoustic guitar, fiddle, banjo or harmonica", "three or four simple chords"),
            ["ballad"] = (60, 80, "a slow, spacious pulse with soft drums or none", "piano, strings and a soft pad", "sustained chords with gentle movement"),
            ["pop"] = (95, 125, "a steady backbeat with eighth-note hi-hats", "piano or electric piano, clean guitar and an electric bass", "a catchy loop of four chords"),
        };

    public static readonly IReadOnlyList<string> StyleChangeAnswers =
    [
        "To turn this {current} piece into {target_words}, {steps}.",
        "Going from {current} to {target_words} mostly means this: {steps}.",
        "{A_target} version would need a few changes: {steps}.",
        "Here's how I'd rework it as {target_words}: {steps}.",
    ];

    public static readonly IReadOnlyList<string> SpeedUp = ["speed it up from {bpm} to about {target_bpm} BPM", "push the tempo from {bpm} up to roughly {target_bpm} beats per minute"];
    public static readonly IReadOnlyList<string> SlowDown = ["slow it down from {bpm} to about {target_bpm} BPM", "bring the tempo down from {bpm} to around {target_bpm} beats per minute"];
    public static readonly IReadOnlyList<string> KeepTempo = ["keep the tempo around {bpm} BPM, which already suits it", "the current {bpm} BPM can stay"];

    public static readonly IReadOnlyList<string> SceneAnswers =
    [
        "With its {feel} pace ({tempo}) and {mood} feel in {key}, it would suit {scene1} or {scene2}.",
        "This {mood} {genre_words} track would work well for {scene1}; it could also fit {scene2}.",
        "I can picture {scene1}. The {mood} character and the {feel} tempo ({tempo}) fit that kind of moment, and so would {scene2}.",
        "It feels {mood}, so I'd use it for {scene1} or {scene2}.",
        "Something like {scene1} - the music is {mood} and moves at {tempo}. {Scene2} would work too.",
    ];

    public static readonly IReadOnlyList<string> PlayAlongAnswers =
    [
        "Count it in {meter_words} at {tempo}{beat_hint}. It's in {key}, so the notes {scale} will all fit{chord_hint}.",
        "Set your metronome to {bpm} and feel {beats} beats to the bar ({meter}). Stick to the {key} scale - {scale}{chord_hint}.",
        "Start by tapping along at {tempo} in {meter}. For improvising, use {key}: {scale}. Land on {tonic} when you want to sound settled{chord_hint}.",
    ];

    public static readonly IReadOnlyList<string> ChordHints = [", and the chords are {chord_set}", "; the changes use {chord_set}", ". Comp or arpeggiate {chord_set}"];

    public static readonly IReadOnlyList<string> StoryAnswers =
    [
        "Once upon a time, in {place}, there lived {character} who loved the sound of {instrument}. Every evening the music drifted through the air at a {feel} pace, about {bpm} beats a minute, and {character_short} {activity}. The {mood} tune told of {theme}. When the last note faded, {character_short} {ending}. The end.",
        "Far away, beyond {place}, {character} heard {instrument} playing a {mood} song. It moved {feel_adverb}, like {image}. Following the music, {character_short} {activity}, and learned about {theme}. At last {character_short} {ending}. Goodnight.",
        "There was once {character} who lived in {place}. One night, {instrument} began to play, {mood} and {feel}. {Character_short} {activity}, counting along softly - {beats} little steps to every bar. The song was all about {theme}, and when it ended, {character_short} {ending}.",
    ];

    public static readonly IReadOnlyDictionary<(bool Major, bool Fast), string[][]> StoryParts = new Dictionary<(bool, bool), string[][]>
    {
        // place, character, activity, theme, ending, image
        [(true, true)] = [["a bustling seaside town", "a meadow full of fireflies", "a city of bright balloons"], ["a little fox named Pip", "a curious girl called Maya", "a tiny dragon named Ember"], ["danced around the garden", "skipped along the harbour wall", "raced the wind up the hill"], ["friendship and adventure", "the joy of a summer day", "a treasure shared with friends"], ["curled up, smiling, and fell fast asleep", "yawned a happy yawn and drifted off to dreamland"], ["a kite on a breezy day", "rain tapping on a tin roof"]],
        [(true, false)] = [["a quiet cottage by a lake", "a soft valley of clouds", "a lighthouse at the edge of the sea"], ["an old owl named Oliver", "a sleepy bear called Bramble", "a gentle boy named Leo"], ["watched the stars come out one by one", "rocked slowly in a hammock", "floated on a lily pad"], ["home and the people we love", "a moon that hummed lullabies", "a warm blanket of snow"], ["closed their eyes and slept until morning", "snuggled under the covers and dreamed"], ["a boat rocking on still water", "snow falling without a sound"]],
        [(false, true)] = [["a kingdom hidden in the mountains", "a forest where the trees whispered", "a castle lit by lightning"], ["a brave knight named Rowan", "a clever cat called Shadow", "a young explorer named Iris"], ["ran through the dark woods to find the lost key", "sailed through a storm toward a distant island", "climbed the tallest tower"], ["courage when things are scary", "a secret map and a long journey", "a race against the rising tide"], ["made it safely home and fell asleep, heart still racing", "found the key, yawned, and slept soundly at last"], ["hooves galloping over a bridge", "wind rushing through a canyon"]],
        [(false, false)] = [["a misty island", "an old library at the end of the street", "a snowy village under a grey sky"], ["a lonely lighthouse keeper named Ada", "a small grey rabbit called Moss", "a wandering cloud named Nimbus"], ["gazed at the rain on the window", "wandered through the quiet streets", "wrote letters to the moon"], ["missing an old friend", "memories of long ago", "a star that had wandered from home"], ["felt the sadness soften and drifted into sleep", "smiled a small smile and slept"], ["a candle flickering in the dark", "leaves drifting down a slow river"]],
    };

    public static readonly IReadOnlyList<string> DanceAnswers =
    [
        "Yes - at {tempo} in {meter} it suits {dance}. Count {count} and step on the beat.",
        "I'd go for {dance}: the {meter_words} and the {feel} pace ({tempo}) fit. Count {count}.",
        "It's {danceable}. {Dance_cap} would work, counting {count} at {bpm} BPM.",
    ];

    /// <summary>Captions written from metadata: an opening, then sentences each naming one fact, in varied order.</summary>
    public static readonly IReadOnlyList<string> CaptionOpenings =
    [
        "This is {a_mood} {genre_words} piece led by {melody}.", "{A_mood_cap} {genre_words} track with {melody} carrying the melody.",
        "Here {melody} plays {a_mood} tune in {a_genre} style.", "A {genre_words} recording that sounds {mood}, with {melody} in the lead.",
        "The clip is {a_mood} {genre_words} number featuring {melody}.", "{Melody_cap} takes the lead in this {mood} {genre_words} piece.",
    ];

    public static readonly IReadOnlyList<string> CaptionOpeningsNoMelody =
    [
        "This is {a_mood} {genre_words} piece.", "{A_mood_cap} {genre_words} track.", "The clip is {a_mood} {genre_words} recording.", "A {mood} piece of {genre_words}.",
    ];

    public static readonly IReadOnlyList<string> CaptionOpeningsNoGenre =
    [
        "This is {a_mood} piece led by {melody}.", "{Melody_cap} plays {a_mood} melody here.", "A {mood} recording with {melody} on the tune.",
    ];

    public static readonly IReadOnlyList<string> CaptionTempo =
    [
        "It moves at {tempo} in {meter_words}.", "The tempo is {tempo}, counted in {meter}.", "The beat is {feel}, about {bpm} BPM in {meter}.", "It sits at {tempo}, {meter_words}.",
    ];

    public static readonly IReadOnlyList<string> CaptionTempoNoMeter = ["It moves at {tempo}.", "The tempo is {tempo}.", "The pace is {feel}, at {tempo}."];

    public static readonly IReadOnlyList<string> CaptionKey =
    [
        "The music is in {key}.", "It is written in {key}.", "The harmony centres on {key}.", "The key is {key}.",
    ];

    public static readonly IReadOnlyList<string> CaptionChords = [" The chords move {chords}.", " The progression runs {chords}.", " Underneath, the chords go {chords}."];

    public static readonly IReadOnlyList<string> CaptionBacking =
    [
        "{Backing} support it.", "Behind it you can hear {backing}.", "The accompaniment comes from {backing}.", "{Backing} fill out the arrangement.",
    ];

    public static readonly IReadOnlyList<string> CaptionInstrumentsOnly = ["The instruments are {instruments}.", "It features {instruments}.", "You can hear {instruments}."];

    public static readonly IReadOnlyList<string> CaptionMood =
    [
        "Overall the mood is {mood} and {mood2}.", "It feels {mood} and {mood2}.", "The atmosphere is {mood}, even {mood2}.", "The overall feel is {mood} with a {mood2} edge.",
    ];

    /// <summary>The system prompt for an OpenAI-compatible chat model asked to write instruction pairs, as LLark did.</summary>
    public const string LlmSystemPrompt =
        "You write training data for a music question-answering model that listens to a short audio clip. " +
        "The user message is the clip's metadata as JSON. Its fields may include: tempo_bpm (beats per minute), key (tonic and major/minor), " +
        "meter (time signature), instruments (instrument names, melody first), chords (chord symbols with start times in seconds), " +
        "genre, style, caption (a human description), tags, and others. Only use facts present in the metadata; never invent a tempo, key, " +
        "instrument or chord that is not there, and never mention the metadata, file names or JSON: answer as if you heard the music. " +
        "Write question-answer pairs in three families: \"understanding\" (questions about musical facts: tempo, key, meter, instruments, chords, genre), " +
        "\"captioning\" (a request to describe the clip, answered with a fluent paragraph covering tempo, key, instruments, style and mood), and " +
        "\"reasoning\" (questions needing musical reasoning: what scene or activity it fits, how to play along, a story that fits it, " +
        "how it would change into another style). Vary the wording of questions and answers; state numbers as people write them. " +
        "Reply with only a JSON array of objects, each {\"family\": ..., \"task\": ..., \"query\": ..., \"response\": ...}, and nothing else.";
    /// <summary>Adverbs for the tempo ranges of <see cref="TempoFeel"/>, in the same order.</summary>
    public static readonly IReadOnlyList<string> TempoAdverbs = ["slowly", "gently", "steadily", "brightly", "quickly"];

    public static readonly IReadOnlyList<string> BeatHints = [" - the drums mark every beat", " (the kick drum lands on the beat)", ", following the drummer"];

    /// <summary>Dances: by style first, then by meter, then by tempo (slow below 80 BPM).</summary>
    public static readonly IReadOnlyDictionary<string, string> StyleDances = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["jazz swing"] = "swing dancing or a lindy hop", ["bossa nova"] = "a gentle samba step", ["electronic"] = "club-style dancing",
        ["rock"] = "a rock-and-roll jive", ["waltz"] = "a waltz", ["ballad"] = "a slow dance", ["folk"] = "a barn dance",
    };

    public const string TripleDance = "a waltz", SlowDance = "a slow dance", DefaultDance = "a simple two-step";

    public static readonly IReadOnlyDictionary<int, string> Counts = new Dictionary<int, string> { [3] = "one-two-three, one-two-three", [4] = "one-two-three-four", [2] = "one-two" };

    public static readonly IReadOnlyList<string> Danceable = ["very danceable", "easy to dance to", "danceable"];
    public static readonly IReadOnlyList<string> GentlyDanceable = ["danceable, if gently", "better for swaying than jumping", "suited to a relaxed dance"];

    /// <summary>Joining words for lists ("a, b and c").</summary>
    public const string And = "and";

    public static readonly IReadOnlyList<string> TimedChord = ["{chord} at {time} s", "{chord} from {time} seconds"];
}
