using System.Collections.Concurrent;

namespace LLark.Tests.Fuzz;

/// <summary>
/// Defects the fuzz properties found that are being fixed elsewhere. While one is listed here, a property lets a
/// violation of exactly that kind through (and says so on the output) instead of failing every run, and the inputs
/// that show it are kept as regression cases skipped with the entry's text as the reason. Once the fix lands, delete the
/// entry: the properties are then strict about it, and the compiler points at the Skip arguments to delete with it.
/// </summary>
internal static class KnownDefects
{
    /// <summary>A decoder refusal that repeats the runtime's message for a bug in the library underneath (NLayer, NVorbis).</summary>
    public const string RawDecoderMessage =
        "open defect: AudioDecoder refusals repeat raw .NET exception messages of the decoding libraries (\"the Mp3 audio is malformed: Index was outside the bounds of the array.\")";

    /// <summary>A float WAV whose samples are NaN or infinite decodes as if they were sound.</summary>
    public const string NonFiniteSamplesAccepted =
        "open defect: AudioDecoder returns NaN and infinite samples from float WAV files instead of refusing the clip as corrupt";

    /// <summary>An EmbeddingFrames fps of infinity passes the fps > 0 check.</summary>
    public const string InfiniteFpsAccepted =
        "open defect: the language service accepts EmbeddingFrames with fps = Infinity instead of INVALID_ARGUMENT on frames.fps";

    /// <summary>Embedding frames holding NaN or infinity are accepted as audio.</summary>
    public const string NonFiniteFramesAccepted =
        "open defect: the language service accepts EmbeddingFrames with NaN or infinite values instead of INVALID_ARGUMENT on frames.data";

    /// <summary>A request body that is not a valid protobuf message ends in UNKNOWN instead of INVALID_ARGUMENT.</summary>
    public const string MalformedProtobufUnknown =
        "open defect: a gRPC request that is not valid protobuf ends in UNKNOWN instead of INVALID_ARGUMENT";

    private static readonly HashSet<string> Open =
        [RawDecoderMessage, NonFiniteSamplesAccepted, InfiniteFpsAccepted, NonFiniteFramesAccepted, MalformedProtobufUnknown];

    private static readonly ConcurrentDictionary<string, bool> Reported = new();

    /// <summary>
    /// Whether <paramref name="defect"/> is still open; a property tolerates only open defects. The first case of
    /// each is printed; printing every one would fill the test host's memory in a long --fuzz run.
    /// </summary>
    public static bool Tolerates(string defect, string what)
    {
        if (!Open.Contains(defect)) return false;
        if (Reported.TryAdd(defect, true)) Console.WriteLine($"fuzz: known defect ({defect}), first case: {what}");
        return true;
    }
}
