using System.Collections.Frozen;
using System.Threading.RateLimiting;

namespace LLark.Gateway;

/// <summary>
/// One token bucket (calls started) and one concurrency limiter (calls in flight) per key. Neither queues: a call over
/// a limit is refused at once with a hint of when to retry, which the caller's own retry policy can honour.
/// </summary>
public sealed class KeyLimiters : IDisposable
{
    private readonly FrozenDictionary<string, (TokenBucketRateLimiter Rate, ConcurrencyLimiter Streams, KeyLimitOptions Limits)> limiters;

    public KeyLimiters(ApiKeyStore keys) =>
        limiters = keys.Keys.ToFrozenDictionary(k => k.Name, k => (Bucket(k.Limits), Streams(k.Limits), k.Limits), StringComparer.Ordinal);

    /// <summary>Refused: which limit (<c>rate</c> or <c>streams</c>) and when to try again.</summary>
    public readonly record struct Refusal(string Limit, TimeSpan RetryAfter);

    /// <summary>A lease to hold until the call ends, or the refusal.</summary>
    public (RateLimitLease? Lease, Refusal? Refused) TryAcquire(ApiKey key)
    {
        var (rate, streams, limits) = limiters[key.Name];
        // Streams first: a call refused for being one too many in flight never started, so it must not spend a token.
        RateLimitLease inFlight = streams.AttemptAcquire();
        if (!inFlight.IsAcquired)
        {
            inFlight.Dispose();
            return (null, new Refusal("streams", limits.ConcurrencyRetryAfter));
        }
        using RateLimitLease started = rate.AttemptAcquire();
        if (started.IsAcquired) return (inFlight, null);
        inFlight.Dispose();
        TimeSpan retryAfter = started.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan after) ? after : TimeSpan.FromSeconds(1 / limits.RequestsPerSecond);
        return (null, new Refusal("rate", retryAfter));
    }

    /// <summary>
    /// r calls a second as k tokens every k/r seconds, k the least whole number that keeps the period at 50 ms or more:
    /// exact for any rate, with no timer faster than 20 Hz.
    /// </summary>
    private static TokenBucketRateLimiter Bucket(KeyLimitOptions limits) => new(BucketOptions(limits.RequestsPerSecond, limits.Burst));

    internal static TokenBucketRateLimiterOptions BucketOptions(double perSecond, int burst)
    {
        int tokens = Math.Max(1, (int)Math.Ceiling(perSecond * 0.05));
        return new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst,
            TokensPerPeriod = tokens,
            ReplenishmentPeriod = TimeSpan.FromSeconds(tokens / perSecond),
            QueueLimit = 0,
            AutoReplenishment = true,
        };
    }

    private static ConcurrencyLimiter Streams(KeyLimitOptions limits) =>
        new(new ConcurrencyLimiterOptions { PermitLimit = limits.MaxConcurrentStreams, QueueLimit = 0 });

    public void Dispose()
    {
        foreach (var (rate, streams, _) in limiters.Values)
        {
            rate.Dispose();
            streams.Dispose();
        }
    }
}
