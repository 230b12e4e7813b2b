using Grpc.Net.Client;
using LLark.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace LLark.Tests.TestSupport;

/// <summary>A real host on 127.0.0.1 with free ports, and a gRPC channel to it.</summary>
internal sealed class LoopbackHost : IAsyncDisposable
{
    private LoopbackHost(WebApplication app)
    {
        App = app;
        IReadOnlyList<Uri> addresses = app.BoundAddresses();
        // Kestrel lists the endpoints in the order they were added: gRPC first, then HTTP/1.1.
        GrpcAddress = addresses[0];
        HttpAddress = addresses.Count > 1 ? addresses[1] : null;
        Channel = GrpcChannel.ForAddress(GrpcAddress, new GrpcChannelOptions { MaxReceiveMessageSize = 64 << 20 });
    }

    public WebApplication App { get; }

    public Uri GrpcAddress { get; }

    public Uri? HttpAddress { get; }

    public GrpcChannel Channel { get; }

    /// <summary>A loopback port that was free a moment ago, for a host a test stops and starts again on the same address.</summary>
    public static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Loopback, free ports, plus <paramref name="settings"/>.</summary>
    public static Action<WebApplicationBuilder> Settings(IDictionary<string, string?> settings) => builder =>
    {
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["LLark:Listen:Address"] = "127.0.0.1",
            ["LLark:Listen:GrpcPort"] = "0",
            ["LLark:Listen:HttpPort"] = "0",
            ["Logging:LogLevel:Default"] = "Warning",
        });
        builder.Configuration.AddInMemoryCollection(settings);
    };

    public static async Task<LoopbackHost> StartAsync(WebApplication app)
    {
        await app.StartAsync().ConfigureAwait(false);
        return new LoopbackHost(app);
    }

    /// <summary>Waits until the host begins to stop by itself (it gives up after 30 s).</summary>
    public Task Stopping()
    {
        var stopped = new TaskCompletionSource();
        App.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().ApplicationStopping.Register(() => stopped.TrySetResult());
        return stopped.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// Starts <paramref name="app"/>, whose model cannot load, and checks that it stops by itself with
    /// <paramref name="exitCode"/> and never reports SERVING. The process's exit code is put back afterwards.
    /// </summary>
    public static async Task AssertStopsItselfWith(WebApplication app, int exitCode)
    {
        int before = Environment.ExitCode;
        LoopbackHost host = await StartAsync(app).ConfigureAwait(false);
        try
        {
            await host.Stopping().ConfigureAwait(false);
            Assert.Equal(exitCode, Environment.ExitCode);
            Assert.False(host.App.Services.GetRequiredService<global::LLark.ServiceDefaults.ServingStatus>().IsServing);
        }
        finally
        {
            Environment.ExitCode = before;
            await host.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await App.StopAsync().ConfigureAwait(false);
        await App.DisposeAsync().ConfigureAwait(false);
    }
}
