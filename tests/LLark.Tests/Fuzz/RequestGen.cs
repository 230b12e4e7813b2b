using CsCheck;
using Google.Protobuf;
using LLark.Common.V1;
using LLark.Language.V1;

namespace LLark.Tests.Fuzz;

/// <summary>Random requests: every field, with the values that break numbers (NaN, infinities, zero, the extremes) well represented.</summary>
internal static class RequestGen
{
    public static readonly Gen<float> Float = Gen.Frequency(
        (3, Gen.OneOf(0f, 1f, 0.5f, -1f, 2f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, float.MaxValue, -0f, 1.0000001f)),
        (2, Gen.Float[0f, 2f]),
        (1, Gen.Float));

    public static readonly Gen<uint> Count = Gen.Frequency(
        (4, Gen.UInt[0, 8]),
        (1, Gen.OneOf<uint>(16u, 2048u, 2049u, 1u << 20, int.MaxValue, (uint)int.MaxValue + 1, uint.MaxValue)),
        (1, Gen.UInt));

    /// <summary>Text with the template's reserved markers, control characters and lone surrogates mixed in.</summary>
    public static readonly Gen<string> Text = Gen.Frequency(
        (3, Gen.Char['a', 'z'].Array[0, 24].Select(c => new string(c))),
        (1, Gen.OneOf("", " ", "<audio>", "###", "\u0000", "\ud800", "Describe <audio> ### this", new string('x', 5000))),
        (1, Gen.String));

    public static readonly Gen<float[]> FrameValues = Gen.Frequency(
        (3, Gen.Float[-1f, 1f].Array[0, 200]),
        (1, Float.Array[0, 200]));

    public static readonly Gen<EmbeddingFrames> Frames = Gen.Select(Gen.Frequency((3, Gen.Enum<FrameDType>()), (1, Gen.Int[3, 1000].Select(i => (FrameDType)i))), Count, Count, Float.Select(f => (double)f), FrameValues, Gen.Bool,
        (dtype, frames, width, fps, values, exact) =>
        {
            var message = new EmbeddingFrames { Dtype = dtype, Frames = frames, Width = width, Fps = fps };
            // Half the time the data has exactly the length the header promises (as far as the values go), so that the checks past the length run.
            float[] data = exact && (ulong)frames * width <= 4096 ? [.. Enumerable.Range(0, (int)(frames * width)).Select(i => values.Length == 0 ? 0f : values[i % values.Length])] : values;
            byte[] bytes = dtype == FrameDType.Bfloat16
                ? [.. data.SelectMany(v => BitConverter.GetBytes((ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)))]
                : [.. data.SelectMany(BitConverter.GetBytes)];
            message.Data = ByteString.CopyFrom(bytes);
            return message;
        });

    public static readonly Gen<GenerateRequest> Generate = Gen.Select(
        Gen.Select(Text, Text, Gen.Bool, (h, a, answered) => new ChatTurn { Human = h, Assistant = answered ? a : "" }).Array[0, 3],
        Gen.Int[0, 3],
        Gen.Select(Float, Float, Count, Float, Gen.Bool.SelectMany(seeded => seeded ? Gen.ULong.Select(s => (ulong?)s) : Gen.Const((ulong?)null)),
            (t, p, k, r, seed) =>
            {
                var s = new SamplingParameters { Temperature = t, TopP = p, TopK = k, RepetitionPenalty = r };
                if (seed is { } value) s.Seed = value;
                return s;
            }).OrNull(),
        Gen.Select(Count, Text.Array[0, 3], Gen.Bool, (n, stop, ignore) => new StoppingParameters { MaxNewTokens = n, Stop = { stop }, IgnoreEos = ignore }).OrNull(),
        Gen.Select(Gen.Bool, Gen.Bool, (ids, logprobs) => new ReturnOptions { TokenIds = ids, Logprobs = logprobs }).OrNull(),
        (turns, audio, sampling, stopping, returns) =>
        {
            var request = new GenerateRequest { Sampling = sampling, Stopping = stopping, ReturnOptions = returns };
            request.Turns.Add(turns);
            return (request, audio);
        }).SelectMany(t => t.audio switch
        {
            0 => Gen.Const(t.request),
            1 => Text.Select(id => { var r = t.request.Clone(); r.EmbeddingId = id; return r; }),
            2 => Frames.Select(f => { var r = t.request.Clone(); r.Frames = f; return r; }),
            _ => Gen.Byte.Array[0, 64].Select(b => { var r = t.request.Clone(); r.AudioBytes = new AudioBytes { Data = ByteString.CopyFrom(b) }; return r; }),
        });

    /// <summary>A request as JSON, or as its wire bytes when it holds text JSON cannot carry (a lone surrogate).</summary>
    public static string Print(IMessage message)
    {
        try
        {
            return message.ToString() ?? "";
        }
        catch (ArgumentException)
        {
            return $"{message.Descriptor.Name} bytes {Convert.ToHexStringLower(message.ToByteArray())}";
        }
    }

    /// <summary>The message unset a quarter of the time, as a client that leaves it out sends it.</summary>
    private static Gen<T?> OrNull<T>(this Gen<T> gen) where T : class => Gen.Frequency((1, Gen.Const((T?)null)), (3, gen.Select(v => (T?)v)));
}
