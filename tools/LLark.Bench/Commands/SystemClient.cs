using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using LLark.Cli.Commands;
using LLark.Encoder.V1;
using LLark.Language.V1;

namespace LLark.Bench.Commands;

/// <summary>
/// What the benchmarks that drive a running system (<c>e2e</c>, <c>load</c>) share: the API key as tools/run.sh leaves
/// it, one timed Generate stream, an upload through EmbedStream, percentiles, and a process's resident memory.
/// </summary>
internal static class SystemClient
{
    public const string DefaultGateway = "http://127.0.0.1:5000";

    /// <summary><paramref name="key"/>, else $LLARK_API_KEY, else the key tools/run.sh wrote to .llark/api-key.</summary>
    public static string ApiKey(string? key)
    {
        key ??= Environment.GetEnvironmentVariable("LLARK_API_KEY") ?? (File.Exists(".llark/api-key") ? File.ReadAllText(".llark/api-key").Trim() : null);
        if (string.IsNullOrEmpty(key)) throw new UsageException("no API key: pass --api-key, set LLARK_API_KEY, or start the system with tools/run.sh");
        return key;
    }

    public static Metadata Bearer(string key) => new() { { "authorization", "Bearer " + key } };

    /// <summary>One stream's timings: time to the first token frame, the gaps between token frames, the tokens the final frame counts.</summary>
    public sealed record TimedStream(double TtftMs, double[] GapsMs, int Tokens, double Seconds);

    public static async Task<TimedStream> Stream(LanguageService.LanguageServiceClient client, GenerateRequest request, Metadata? headers, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var gaps = new List<double>();
        double ttft = -1, last = 0;
        int tokens = 0;
        using var call = client.Generate(request, headers, cancellationToken: ct);
        await foreach (GenerateResponse response in call.ResponseStream.ReadAllAsync(ct).ConfigureAwait(false))
        {
            double now = clock.Elapsed.TotalMilliseconds;
            if (response.FrameCase == GenerateResponse.FrameOneofCase.Final)
            {
                tokens = (int)response.Final.Usage.GeneratedTokens;
                continue;
            }
            if (ttft < 0) ttft = now;
            else gaps.Add(now - last);
            last = now;
        }
        return new TimedStream(ttft, [.. gaps], tokens, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Embeds a clip through EmbedStream: a header announcing its size, then chunks of <paramref name="chunk"/> bytes.</summary>
    public static async Task<EmbedResponse> EmbedStream(EncoderService.EncoderServiceClient client, byte[] audio, string filename, int chunk, Metadata? headers,
        CancellationToken ct)
    {
        using var call = client.EmbedStream(headers, cancellationToken: ct);
        await call.RequestStream.WriteAsync(new EmbedStreamRequest { Header = new EmbedStreamHeader { Filename = filename, TotalBytes = (ulong)audio.Length } }, ct)
            .ConfigureAwait(false);
        for (int at = 0; at < audio.Length; at += chunk)
        {
            await call.RequestStream.WriteAsync(new EmbedStreamRequest { Chunk = ByteString.CopyFrom(audio, at, Math.Min(chunk, audio.Length - at)) }, ct)
                .ConfigureAwait(false);
        }
        await call.RequestStream.CompleteAsync().ConfigureAwait(false);
        return await call.ResponseAsync.ConfigureAwait(false);
    }

    /// <summary>The nearest-rank percentile (<paramref name="q"/> in 0..1); NaN for no values. Sorts <paramref name="values"/>.</summary>
    public static double Percentile(double[] values, double q)
    {
        if (values.Length == 0) return double.NaN;
        Array.Sort(values);
        return values[Math.Clamp((int)Math.Ceiling(q * values.Length) - 1, 0, values.Length - 1)];
    }

    public static double Median(double[] values)
    {
        if (values.Length == 0) return double.NaN;
        Array.Sort(values);
        return values.Length % 2 == 1 ? values[values.Length / 2] : (values[values.Length / 2 - 1] + values[values.Length / 2]) / 2;
    }

    /// <summary>A process's resident memory (VmRSS) in bytes; null when it is gone or there is no /proc.</summary>
    public static long? ResidentBytes(int pid) => ProcStatusBytes(pid.ToString(CultureInfo.InvariantCulture), "VmRSS");

    /// <summary>A size field of /proc/<paramref name="process"/>/status ("self" or a PID) in bytes; null when it cannot be read.</summary>
    public static long? ProcStatusBytes(string process, string field)
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{process}/status"))
            {
                if (line.StartsWith(field + ":", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }
        catch (IOException)
        {
            // Gone between the listing and the read, or never there: no figure rather than a failed benchmark.
        }
        return null;
    }

    /// <summary>A one-turn question about a clip that runs to <paramref name="maxNew"/> tokens; <paramref name="audio"/> says which clip.</summary>
    public static GenerateRequest Ask(uint maxNew, Action<GenerateRequest> audio)
    {
        var request = new GenerateRequest { Stopping = new StoppingParameters { MaxNewTokens = maxNew, IgnoreEos = true } };
        request.Turns.Add(new ChatTurn { Human = "Describe this clip." });
        audio(request);
        return request;
    }
}
