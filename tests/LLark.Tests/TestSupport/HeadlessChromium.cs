using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LLark.Tests.Checkpoints;

namespace LLark.Tests.TestSupport;

/// <summary>
/// Debian's Chromium, headless, driven over the DevTools protocol on a WebSocket: real mouse clicks and typing into one
/// page, files set on a file input as a user's choice would, script evaluated in the page. No npm packages needed.
/// </summary>
internal sealed class HeadlessChromium : IAsyncDisposable
{
    private readonly Process process;
    private readonly TempDirectory profile;
    private readonly ClientWebSocket socket = new();
    private readonly ConcurrentDictionary<int, TaskCompletionSource<JsonElement>> pending = new();
    private readonly CancellationTokenSource stop = new();
    private readonly SemaphoreSlim sending = new(1, 1);
    private Task receiving = Task.CompletedTask;
    private int nextId;

    private HeadlessChromium(Process process, TempDirectory profile)
    {
        this.process = process;
        this.profile = profile;
    }

    public static async Task<HeadlessChromium> StartAsync(int width = 960, int height = 760)
    {
        string binary = File.Exists("/usr/bin/chromium") ? "/usr/bin/chromium"
            : throw new InvalidOperationException("Chromium is missing: run tools/setup.sh (apt-get install chromium)");
        var profile = new TempDirectory();
        var start = new ProcessStartInfo(binary) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string a in new[]
                 {
                     "--headless=new", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                     $"--user-data-dir={profile.Path}", $"--window-size={width},{height}", "--no-first-run",
                     "--no-default-browser-check", "--disable-gpu", "--disable-extensions", "--mute-audio",
                     // Root in a container has no user namespaces for the sandbox.
                     "--no-sandbox", "about:blank",
                 })
            start.ArgumentList.Add(a);
        Process process = Process.Start(start)!;
        var browser = new HeadlessChromium(process, profile);
        try
        {
            process.OutputDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            var errors = new StringBuilder();
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null) { listening.TrySetException(new InvalidOperationException($"Chromium exited: {errors}")); return; }
                lock (errors) errors.AppendLine(e.Data);
                const string Marker = "DevTools listening on ";
                int at = e.Data.IndexOf(Marker, StringComparison.Ordinal);
                if (at >= 0) listening.TrySetResult(e.Data[(at + Marker.Length)..].Trim());
            };
            process.BeginErrorReadLine();
            var browserSocket = new Uri(await listening.Task.WaitAsync(TimeSpan.FromSeconds(60)));
            using var http = new HttpClient { BaseAddress = new Uri($"http://{browserSocket.Authority}") };
            string? pageSocket = null;
            for (int i = 0; i < 100 && pageSocket is null; i++)
            {
                JsonArray targets = JsonNode.Parse(await http.GetStringAsync(new Uri("/json/list", UriKind.Relative)))!.AsArray();
                pageSocket = targets.FirstOrDefault(t => (string?)t!["type"] == "page")?["webSocketDebuggerUrl"]?.GetValue<string>();
                if (pageSocket is null) await Task.Delay(100);
            }
            await browser.socket.ConnectAsync(new Uri(pageSocket ?? throw new InvalidOperationException("Chromium opened no page")), CancellationToken.None);
            browser.receiving = Task.Run(browser.ReceiveLoop);
            await browser.Send("Page.enable");
            await browser.Send("Runtime.enable");
            await browser.Send("Emulation.setDeviceMetricsOverride", new { width, height, deviceScaleFactor = 1, mobile = false });
            return browser;
        }
        catch
        {
            await browser.DisposeAsync();
            throw;
        }
    }

    public async Task<JsonElement> Send(string method, object? parameters = null)
    {
        int id = Interlocked.Increment(ref nextId);
        var answer = new TaskCompletionSource<JsonElement>(TaskCreationOptions.RunContinuationsAsynchronously);
        pending[id] = answer;
        byte[] message = JsonSerializer.SerializeToUtf8Bytes(new { id, method, @params = parameters ?? new { } });
        await sending.WaitAsync();
        try
        {
            await socket.SendAsync(message, WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
        }
        finally
        {
            sending.Release();
        }
        return await answer.Task.WaitAsync(TimeSpan.FromSeconds(60));
    }

    private async Task ReceiveLoop()
    {
        var buffer = new byte[1 << 16];
        using var message = new MemoryStream();
        try
        {
            while (!stop.IsCancellationRequested)
            {
                WebSocketReceiveResult result = await socket.ReceiveAsync(buffer, stop.Token);
                if (result.MessageType == WebSocketMessageType.Close) break;
                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage) continue;
                using JsonDocument doc = JsonDocument.Parse(message.ToArray());
                message.SetLength(0);
                if (!doc.RootElement.TryGetProperty("id", out JsonElement idElement) || !pending.TryRemove(idElement.GetInt32(), out var answer)) continue;
                if (doc.RootElement.TryGetProperty("error", out JsonElement error))
                    answer.TrySetException(new InvalidOperationException($"DevTools: {error.GetRawText()}"));
                else
                    answer.TrySetResult(doc.RootElement.GetProperty("result").Clone());
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException)
        {
        }
        foreach (var answer in pending.Values) answer.TrySetException(new InvalidOperationException("the DevTools connection closed"));
    }

    public async Task Navigate(Uri url)
    {
        await Send("Page.navigate", new { url = url.ToString() });
        await WaitFor("document.readyState === 'complete'", TimeSpan.FromSeconds(30));
    }

    /// <summary>Runs <paramref name="expression"/> in the page (promises awaited) and returns its value as JSON.</summary>
    public async Task<JsonElement> Evaluate(string expression)
    {
        JsonElement result = await Send("Runtime.evaluate", new { expression, returnByValue = true, awaitPromise = true });
        if (result.TryGetProperty("exceptionDetails", out JsonElement exception))
            throw new InvalidOperationException($"page script failed: {exception.GetRawText()}");
        return result.GetProperty("result").TryGetProperty("value", out JsonElement value) ? value : default;
    }

    public async Task WaitFor(string condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (await Evaluate($"!!({condition})") is { ValueKind: JsonValueKind.True }) return;
            if (clock.Elapsed > timeout) throw new TimeoutException($"the page never got to: {condition}");
            await Task.Delay(25);
        }
    }

    /// <summary>A left click in the middle of the element, as the mouse gives it.</summary>
    public async Task Click(string selector)
    {
        JsonElement box = await Evaluate($$"""
            (() => { const e = document.querySelector({{JsonSerializer.Serialize(selector)}}); e.scrollIntoView({block: 'center'});
                     const r = e.getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()
            """);
        double x = box.GetProperty("x").GetDouble(), y = box.GetProperty("y").GetDouble();
        await Send("Input.dispatchMouseEvent", new { type = "mouseMoved", x, y });
        await Send("Input.dispatchMouseEvent", new { type = "mousePressed", x, y, button = "left", clickCount = 1 });
        await Send("Input.dispatchMouseEvent", new { type = "mouseReleased", x, y, button = "left", clickCount = 1 });
    }

    /// <summary>Clicks into the field and types <paramref name="text"/> as keyboard input.</summary>
    public async Task Type(string selector, string text)
    {
        await Click(selector);
        await Send("Input.insertText", new { text });
    }

    public async Task PressEnter()
    {
        await Send("Input.dispatchKeyEvent", new { type = "keyDown", key = "Enter", code = "Enter", windowsVirtualKeyCode = 13, text = "\r" });
        await Send("Input.dispatchKeyEvent", new { type = "keyUp", key = "Enter", code = "Enter", windowsVirtualKeyCode = 13 });
    }

    /// <summary>Sets the files of a file input as a user's choice in the file dialog would (its change event fires).</summary>
    public async Task ChooseFile(string selector, string path)
    {
        JsonElement found = await Send("Runtime.evaluate", new { expression = $"document.querySelector({JsonSerializer.Serialize(selector)})" });
        string objectId = found.GetProperty("result").GetProperty("objectId").GetString()!;
        await Send("DOM.setFileInputFiles", new { files = new[] { path }, objectId });
    }

    public async Task<byte[]> Screenshot()
    {
        JsonElement shot = await Send("Page.captureScreenshot", new { format = "png", captureBeyondViewport = false });
        return Convert.FromBase64String(shot.GetProperty("data").GetString()!);
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        try
        {
            if (socket.State == WebSocketState.Open)
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(2));
        }
        catch (Exception e) when (e is WebSocketException or TimeoutException or OperationCanceledException)
        {
        }
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException)
        {
        }
        await receiving.ConfigureAwait(false);
        socket.Dispose();
        process.Dispose();
        stop.Dispose();
        sending.Dispose();
        try
        {
            profile.Dispose();
        }
        catch (IOException)
        {
            // A child process may still be letting go of its profile files; the temp folder is swept later anyway.
        }
    }
}
