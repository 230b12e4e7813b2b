using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LLark.ServiceDefaults;

/// <summary>Settings of <see cref="IdleMemoryTrim"/> (<c>LLark:Memory</c>).</summary>
public sealed class MemoryOptions
{
    public const string Section = "LLark:Memory";

    /// <summary>Bytes allocated since the last trim after which an idle moment returns the freed heap to the system; 0: never.</summary>
    [Range(0, long.MaxValue)] public long IdleTrimAfterBytes { get; set; } = 256L << 20;

    /// <summary>How often the service looks for an idle moment.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")] public TimeSpan IdleCheckInterval { get; set; } = TimeSpan.FromSeconds(2);
}

/// <summary>
/// Counts the requests in flight and, when none is and the process has allocated <see cref="MemoryOptions.IdleTrimAfterBytes"/>
/// since the last trim, has the GC compact the heap and decommit what is free. A clip of tens of megabytes is read
/// whole as a gRPC message and decoded; the GC frees those buffers but keeps their memory for the next burst, so
/// after a few large uploads an idle service would hold hundreds of megabytes it no longer uses. Under steady load
/// there is no idle moment and nothing changes; a trim costs one blocking full collection, at a moment when no request
/// is waiting on it.
/// </summary>
public sealed class IdleMemoryTrim(IOptions<MemoryOptions> options, ILogger<IdleMemoryTrim> logger, Func<long>? allocatedBytes = null,
    Action? collect = null) : BackgroundService
{
    private readonly Func<long> allocated = allocatedBytes ?? (() => GC.GetTotalAllocatedBytes());
    private readonly Action trim = collect ?? (() => GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true));
    private long inFlight;
    private long allocatedAtLastTrim;

    /// <summary>Counts a request for as long as it runs.</summary>
    public async Task Track(HttpContext context, RequestDelegate next)
    {
        Interlocked.Increment(ref inFlight);
        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref inFlight);
        }
    }

    /// <summary>One look: trims when nothing is in flight and enough has been allocated since the last trim; returns whether it did.</summary>
    public bool TrimIfIdle()
    {
        long threshold = options.Value.IdleTrimAfterBytes;
        long now = allocated();
        if (threshold <= 0 || Interlocked.Read(ref inFlight) > 0 || now - allocatedAtLastTrim < threshold) return false;
        long before = Environment.WorkingSet;
        trim();
        Log.IdleTrim(logger, (now - allocatedAtLastTrim) / 1048576.0, before / 1048576.0, Environment.WorkingSet / 1048576.0);
        allocatedAtLastTrim = allocated();
        return true;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.Value.IdleTrimAfterBytes <= 0) return;
        using var timer = new PeriodicTimer(options.Value.IdleCheckInterval);
        allocatedAtLastTrim = allocated();
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false)) TrimIfIdle();
    }
}
