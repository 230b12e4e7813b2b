using Microsoft.Extensions.Hosting;

namespace LLark.ServiceDefaults;

public static class HostLifetimeExtensions
{
    /// <summary>
    /// Ends the process with <paramref name="exitCode"/> (a model that cannot be loaded: 3). Stopping while the host
    /// is still starting would cancel Kestrel's bind and end the process with that exception instead, so the stop
    /// waits until the host has started (and happens at once if it already has).
    /// </summary>
    public static void StopOnceStarted(this IHostApplicationLifetime lifetime, int exitCode)
    {
        Environment.ExitCode = exitCode;
        lifetime.ApplicationStarted.Register(lifetime.StopApplication);
    }
}
