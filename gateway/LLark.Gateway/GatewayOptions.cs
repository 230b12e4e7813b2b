using System.ComponentModel.DataAnnotations;
using System.Net.Sockets;

namespace LLark.Gateway;

/// <summary>
/// Section <c>LLark:Gateway</c> (environment: <c>LLARK__GATEWAY__APIKEYSFILE</c>, <c>LLARK__GATEWAY__APIKEYS__0__NAME</c>, ...).
/// Validated at start: a gateway with no usable key, a malformed hash or an unreadable key file does not start.
/// Routes, clusters and their timeouts are YARP's own section, <c>ReverseProxy</c>.
/// </summary>
public sealed class GatewayOptions : IValidatableObject
{
    public const string Section = "LLark:Gateway";

    /// <summary>Keys from configuration, each stored as the SHA-256 of the key; default none.</summary>
    public List<ApiKeyOptions> ApiKeys { get; set; } = [];

    /// <summary>A mounted secret with one <c>name:sha256hex</c> per line (<c>#</c> comments, blank lines allowed); default unset.</summary>
    public string? ApiKeysFile { get; set; }

    /// <summary>Limits for keys that set none of their own.</summary>
    public KeyLimitOptions Limits { get; set; } = new();

    /// <summary>What callers without a valid key may cost, per remote address.</summary>
    public AnonymousLimitOptions Anonymous { get; set; } = new();

    public RetryOptions Retry { get; set; } = new();

    public DnsOptions Dns { get; set; } = new();

    public JsonFrontOptions Json { get; set; } = new();

    public AffinityOptions Affinity { get; set; } = new();

    /// <summary>The keys of both sources with their limits filled in; throws <see cref="FormatException"/> naming the bad entry.</summary>
    public IReadOnlyList<ApiKey> LoadKeys()
    {
        var keys = new List<ApiKey>();
        for (int i = 0; i < ApiKeys.Count; i++)
        {
            ApiKeyOptions k = ApiKeys[i];
            keys.Add(ApiKey.Create(k.Name, k.Sha256, k.LimitsOver(Limits), $"ApiKeys:{i}"));
        }
        if (ApiKeysFile is { Length: > 0 } file) keys.AddRange(ApiKeyFile.Parse(file, Limits));
        if (keys.Count == 0) throw new FormatException("no API keys: set LLark:Gateway:ApiKeys or LLark:Gateway:ApiKeysFile");
        if (keys.GroupBy(k => k.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new FormatException($"API key name '{twice.Key}' is used twice");
        return keys;
    }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        var results = new List<ValidationResult>();
        foreach ((object child, string name) in new (object, string)[] { (Limits, nameof(Limits)), (Anonymous, nameof(Anonymous)), (Retry, nameof(Retry)), (Dns, nameof(Dns)), (Json, nameof(Json)), (Affinity, nameof(Affinity)) })
        {
            var childResults = new List<ValidationResult>();
            if (!Validator.TryValidateObject(child, new ValidationContext(child), childResults, validateAllProperties: true))
                results.AddRange(childResults.Select(r => new ValidationResult($"{name}: {r.ErrorMessage}", [name])));
        }
        for (int i = 0; i < ApiKeys.Count; i++)
        {
            ApiKeyOptions key = ApiKeys[i];
            var keyResults = new List<ValidationResult>();
            if (!Validator.TryValidateObject(key, new ValidationContext(key), keyResults, validateAllProperties: true))
                results.AddRange(keyResults.Select(r => new ValidationResult($"ApiKeys:{i}: {r.ErrorMessage}", [nameof(ApiKeys)])));
        }
        if (results.Count == 0)
        {
            try
            {
                LoadKeys();
            }
            catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException)
            {
                results.Add(new ValidationResult(e.Message, [nameof(ApiKeys)]));
            }
        }
        return results;
    }
}

public sealed class ApiKeyOptions
{
    /// <summary>Who the key belongs to: in logs and metrics, never the key itself. Required.</summary>
    [Required] public string Name { get; set; } = "";

    /// <summary>Hex SHA-256 of the key's UTF-8 bytes (<c>printf %s KEY | sha256sum</c>). Required.</summary>
    [Required] public string Sha256 { get; set; } = "";

    /// <summary>This key's sustained rate; unset: <see cref="GatewayOptions.Limits"/>.</summary>
    [Range(0.001, 1e6)] public double? RequestsPerSecond { get; set; }

    /// <summary>This key's burst; unset: <see cref="GatewayOptions.Limits"/>.</summary>
    [Range(1, 1_000_000)] public int? Burst { get; set; }

    /// <summary>This key's concurrent calls; unset: <see cref="GatewayOptions.Limits"/>.</summary>
    [Range(1, 100_000)] public int? MaxConcurrentStreams { get; set; }

    internal KeyLimitOptions LimitsOver(KeyLimitOptions defaults) => new()
    {
        RequestsPerSecond = RequestsPerSecond ?? defaults.RequestsPerSecond,
        Burst = Burst ?? defaults.Burst,
        MaxConcurrentStreams = MaxConcurrentStreams ?? defaults.MaxConcurrentStreams,
        ConcurrencyRetryAfter = defaults.ConcurrencyRetryAfter,
    };
}

/// <summary>Per key: a token bucket for calls started, and a cap on calls in flight (a Generate stream counts until it ends).</summary>
public sealed class KeyLimitOptions
{
    /// <summary>Calls a second, sustained; default 10.</summary>
    [Range(0.001, 1e6)] public double RequestsPerSecond { get; set; } = 10;

    /// <summary>Calls that may start at once after a quiet spell (the bucket's size); default 20.</summary>
    [Range(1, 1_000_000)] public int Burst { get; set; } = 20;

    /// <summary>Calls in flight at once; default 8.</summary>
    [Range(1, 100_000)] public int MaxConcurrentStreams { get; set; } = 8;

    /// <summary>The retry hint (grpc-retry-pushback-ms, Retry-After) given with a concurrency refusal; default 1 s.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "01:00:00")] public TimeSpan ConcurrencyRetryAfter { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// Per remote address, for callers the gateway has not let in: refusals past a rate are answered RESOURCE_EXHAUSTED,
/// at most one refusal is logged per interval (the metric counts them all), and health Watch streams, which need no
/// key, are capped.
/// </summary>
public sealed class AnonymousLimitOptions
{
    /// <summary>Calls refused for want of a valid key, a second, sustained; past them RESOURCE_EXHAUSTED; default 5.</summary>
    [Range(0.001, 1e6)] public double RefusalsPerSecond { get; set; } = 5;

    /// <summary>Refusals at once after a quiet spell; default 20.</summary>
    [Range(1, 1_000_000)] public int RefusalBurst { get; set; } = 20;

    /// <summary>At most one log line about refused calls per remote address per this interval; default 10 s.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")] public TimeSpan LogInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>grpc.health.v1.Health/Watch streams open at once per remote address; default 4.</summary>
    [Range(1, 100_000)] public int MaxHealthWatches { get; set; } = 4;
}

/// <summary>
/// Which failed attempts the gateway tries again, on another pod where there is one. A call that never reached a backend
/// (no connection could be made) is retried whatever its method; a call that did reach one is retried only when its
/// method is listed here, and only before any of the answer has gone back to the caller.
/// </summary>
public sealed class RetryOptions
{
    /// <summary>Attempts in all, the first included; default 3. 1 turns retries off.</summary>
    [Range(1, 10)] public int MaxAttempts { get; set; } = 3;

    /// <summary>Wait before attempt n+1 is n times this; default 100 ms.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:10")] public TimeSpan Backoff { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// gRPC paths (<c>/package.Service/Method</c>) safe to send twice. Default none; appsettings.json lists GetModelInfo,
    /// GetEmbedding, DeleteEmbedding and Embed (content-addressed). Never Generate: a second prefill is a second answer.
    /// </summary>
    public List<string> IdempotentMethods { get; set; } = [];
}

/// <summary>
/// How destinations named by host (a headless Service: one A record per ready pod) become one destination per pod.
/// Addresses given as IPs are used as they are.
/// </summary>
public sealed class DnsOptions
{
    /// <summary>How often names are looked up again, so pods that come and go are followed; default 10 s.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")] public TimeSpan RefreshPeriod { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How soon a failed lookup is tried again (the last good answer is kept meanwhile); default 2 s.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")] public TimeSpan FailureRetry { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Records to use: InterNetwork (A, default), InterNetworkV6 (AAAA) or Unspecified (both: a dual-stack pod then counts twice).</summary>
    public AddressFamily AddressFamily { get; set; } = AddressFamily.InterNetwork;
}

/// <summary>
/// How the <c>ClipAffinity</c> load-balancing policy (<see cref="ClipAffinity"/>) sends every question about a clip to
/// one language pod, whose prefix cache holds that clip's prompt state, and when it sends one elsewhere.
/// </summary>
public sealed class AffinityOptions
{
    /// <summary>
    /// Calls in flight through this gateway replica at which a pod counts as full, so that a clip's call goes to the next
    /// pod in its ranking (a cold prefill there rather than a wait here); default 16, twice the language service's
    /// default batch, so a busy clip fills its pod's batch and as many again waiting before it spills. Each replica counts
    /// only its own calls: with R replicas a pod may hold R times this.
    /// </summary>
    [Range(1, 100_000)] public int MaxConcurrentPerPod { get; set; } = 16;
}

/// <summary>The JSON and server-sent-events front (<c>/v1/...</c>) for callers without gRPC.</summary>
public sealed class JsonFrontOptions
{
    /// <summary>Deadline of a unary call made for a JSON caller (an Embed may encode a clip on a slow device); default 10 min.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")] public TimeSpan UnaryTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Deadline of a Generate stream made for an SSE caller; default 30 min.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")] public TimeSpan GenerateTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>Largest JSON or audio body; default 96 MiB (a 64 MiB clip in base64 fits).</summary>
    [Range(1024, int.MaxValue)] public int MaxRequestBytes { get; set; } = 96 << 20;
}
