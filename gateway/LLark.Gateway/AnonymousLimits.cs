using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace LLark.Gateway;

/// <summary>
/// Limits by remote address for what needs no key: refusals (a flood of bad keys costs a hash and a log line each),
/// their log lines, and health Watch streams (each holds a connection's stream open for as long as the caller likes).
/// Partitions of addresses gone quiet are dropped by the limiters themselves.
/// </summary>
public sealed class AnonymousLimits : IDisposable
{
    private readonly PartitionedRateLimiter<string> refusals;
    private readonly PartitionedRateLimiter<string> logLines;
    private readonly PartitionedRateLimiter<string> watches;

    public AnonymousLimits(IOptions<GatewayOptions> options)
    {
        AnonymousLimitOptions o = options.Value.Anonymous;
        Options = o;
        refusals = PartitionedRateLimiter.Create<string, string>(remote =>
            RateLimitPartition.GetTokenBucketLimiter(remote, _ => KeyLimiters.BucketOptions(o.RefusalsPerSecond, o.RefusalBurst)));
        logLines = PartitionedRateLimiter.Create<string, string>(remote => RateLimitPartition.GetFixedWindowLimiter(remote, _ =>
            new FixedWindowRateLimiterOptions { PermitLimit = 1, Window = o.LogInterval, QueueLimit = 0, AutoReplenishment = true }));
        watches = PartitionedRateLimiter.Create<string, string>(remote => RateLimitPartition.GetConcurrencyLimiter(remote, _ =>
            new ConcurrencyLimiterOptions { PermitLimit = o.MaxHealthWatches, QueueLimit = 0 }));
    }

    public AnonymousLimitOptions Options { get; }

    /// <summary>Whether <paramref name="remote"/> may be answered UNAUTHENTICATED once more; when not, when to try again.</summary>
    public (bool Within, TimeSpan RetryAfter) Refusal(string remote)
    {
        using RateLimitLease lease = refusals.AttemptAcquire(remote);
        if (lease.IsAcquired) return (true, TimeSpan.Zero);
        return (false, lease.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan after) ? after : TimeSpan.FromSeconds(1 / Options.RefusalsPerSecond));
    }

    /// <summary>Whether this refusal from <paramref name="remote"/> is the one of its interval that is logged.</summary>
    public bool LogsRefusal(string remote)
    {
        using RateLimitLease lease = logLines.AttemptAcquire(remote);
        return lease.IsAcquired;
    }

    /// <summary>A lease to hold while a health Watch stream is open; null when <paramref name="remote"/> has its fill.</summary>
    public RateLimitLease? TryWatch(string remote)
    {
        RateLimitLease lease = watches.AttemptAcquire(remote);
        if (lease.IsAcquired) return lease;
        lease.Dispose();
        return null;
    }

    public void Dispose()
    {
        refusals.Dispose();
        logLines.Dispose();
        watches.Dispose();
    }
}
