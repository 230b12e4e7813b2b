using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace LLark.Tests.Encoder.Service;

/// <summary>
/// Debian's redis-server (tools/setup.sh installs it) on a free loopback port, with no persistence, in a temporary
/// folder; killed and removed on dispose.
/// </summary>
internal sealed class RedisServer : IDisposable
{
    private readonly Process process;
    private readonly string folder;
    private bool disposed;

    private static readonly string[] Candidates = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"];

    private RedisServer(Process process, string folder, int port)
    {
        this.process = process;
        this.folder = folder;
        Port = port;
    }

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    public static async Task<RedisServer> StartAsync()
    {
        string executable = Candidates.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("redis-server is not installed: run tools/setup.sh (it installs Debian's redis-server)");
        int port = TestSupport.LoopbackHost.FreePort();
        string folder = Directory.CreateTempSubdirectory("llark-redis-").FullName;
        var start = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = folder,
        };
        foreach (string arg in new[] { "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", folder })
            start.ArgumentList.Add(arg);
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new RedisServer(process, folder, port);
        for (int i = 0; i < 200; i++)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                return server;
            }
            catch (SocketException)
            {
                if (process.HasExited) break;
                await Task.Delay(25);
            }
        }
        server.Dispose();
        throw new InvalidOperationException($"redis-server did not start on port {port}");
    }


    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        if (!process.HasExited)
        {
            process.Kill();
            process.WaitForExit(5000);
        }
        process.Dispose();
        Directory.Delete(folder, recursive: true);
    }
}
