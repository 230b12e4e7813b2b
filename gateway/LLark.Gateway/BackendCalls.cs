using System.Text;
using Grpc.Core;
using LLark.Encoder.V1;
using LLark.Language.V1;
using Microsoft.AspNetCore.Http.Features;

namespace LLark.Gateway;

/// <summary>
/// Why an HTTP front refuses or fails a call: the gRPC status (the HTTP status follows from it), what is wrong, when to
/// try again, and the request field at fault when there is one.
/// </summary>
public readonly record struct FrontError(StatusCode Code, string Message, TimeSpan? RetryAfter = null, string? Param = null);

/// <summary>Answers a <see cref="FrontError"/> in a front's own error shape.</summary>
public delegate Task FrontErrorWriter(HttpContext context, FrontError error);

/// <summary>
/// What the HTTP fronts (the JSON front and the OpenAI-compatible one) do with the backends, in one place: read a body
/// under the size limit, make a unary call with its deadline, embed a clip, and open a Generate stream up to its first
/// frame, so that a refusal before the first token is still a plain HTTP error. Each front answers failures in its own
/// shape through the <see cref="FrontErrorWriter"/> it passes.
/// </summary>
public static class BackendCalls
{
    /// <summary>A backend's own status and detail; a failure to reach one said without the pod's address, as the proxy says it.</summary>
    public static FrontError FromRpc(string cluster, RpcException e)
    {
        TimeSpan? retryAfter = e.Trailers.GetValue("grpc-retry-pushback-ms") is { } ms && long.TryParse(ms, out long pushback)
            ? TimeSpan.FromMilliseconds(pushback) : null;
        string detail = e.StatusCode == StatusCode.Unavailable && e.Status.DebugException is not null
            ? $"the {cluster} service is unavailable; retry shortly" : e.Status.Detail;
        return new FrontError(e.StatusCode, detail, retryAfter);
    }

    /// <summary>The whole body, or null after refusing one over <see cref="JsonFrontOptions.MaxRequestBytes"/>.</summary>
    public static async Task<byte[]?> ReadBodyAsync(HttpContext context, JsonFrontOptions json, FrontErrorWriter refuse)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = json.MaxRequestBytes;
        using var buffer = new MemoryStream();
        try
        {
            await context.Request.Body.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            await refuse(context, new FrontError(StatusCode.InvalidArgument,
                $"the body is larger than this gateway's limit of {json.MaxRequestBytes} bytes")).ConfigureAwait(false);
            return null;
        }
        return buffer.ToArray();
    }

    /// <summary>The call's answer, or null after answering its failure (or when the caller went away).</summary>
    public static async Task<T?> UnaryAsync<T>(HttpContext context, string cluster, Func<DateTime, CancellationToken, Task<T>> call, TimeSpan timeout,
        FrontErrorWriter refuse) where T : class
    {
        try
        {
            return await call(DateTime.UtcNow + timeout, context.RequestAborted).ConfigureAwait(false);
        }
        catch (RpcException e) when (!context.RequestAborted.IsCancellationRequested)
        {
            await refuse(context, FromRpc(cluster, e)).ConfigureAwait(false);
            return null;
        }
        catch (Exception e) when (context.RequestAborted.IsCancellationRequested && e is OperationCanceledException or RpcException)
        {
            return null;
        }
    }

    public static Task<ModelInfo?> ModelInfoAsync(HttpContext context, BackendClients backends, JsonFrontOptions json, FrontErrorWriter refuse) =>
        UnaryAsync(context, BackendClients.LanguageCluster, async (deadline, ct) =>
            await backends.Language.GetModelInfoAsync(new GetModelInfoRequest(), deadline: deadline, cancellationToken: ct).ConfigureAwait(false),
            json.UnaryTimeout, refuse);

    /// <summary>The encoder's answer for a clip: its content id, computed once and cached, so the next question can name it.</summary>
    public static Task<EmbedResponse?> EmbedAsync(HttpContext context, BackendClients backends, EmbedRequest request, JsonFrontOptions json,
        FrontErrorWriter refuse) =>
        UnaryAsync(context, BackendClients.EncoderCluster, async (deadline, ct) =>
            await backends.Encoder.EmbedAsync(request, deadline: deadline, cancellationToken: ct).ConfigureAwait(false),
            json.UnaryTimeout, refuse);

    /// <summary>
    /// A Generate stream whose first frame has arrived, or null after answering the refusal (a bad field, an unknown
    /// embedding id, a full queue) as a plain HTTP error, or when the caller went away. The caller going away cancels the
    /// backend call.
    /// </summary>
    public static async Task<OpenGenerateCall?> OpenGenerateAsync(HttpContext context, BackendClients backends, GenerateRequest request,
        JsonFrontOptions json, FrontErrorWriter refuse)
    {
        CancellationToken aborted = context.RequestAborted;
        AsyncServerStreamingCall<GenerateResponse> call = backends.Language.Generate(request, ClipAffinity.CallHeaders(request),
            deadline: DateTime.UtcNow + json.GenerateTimeout, cancellationToken: aborted);
        try
        {
            if (await call.ResponseStream.MoveNext(aborted).ConfigureAwait(false)) return new OpenGenerateCall(call, aborted);
            call.Dispose();
            await refuse(context, new FrontError(StatusCode.Internal, "the language service ended the stream without an answer")).ConfigureAwait(false);
            return null;
        }
        catch (RpcException e) when (!aborted.IsCancellationRequested)
        {
            call.Dispose();
            await refuse(context, FromRpc(BackendClients.LanguageCluster, e)).ConfigureAwait(false);
            return null;
        }
        catch (Exception e) when (aborted.IsCancellationRequested && e is OperationCanceledException or RpcException)
        {
            call.Dispose();
            return null;
        }
    }

    /// <summary>Response headers for server-sent events that every proxy on the way passes on at once.</summary>
    public static void BeginEventStream(HttpContext context)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
    }

    /// <summary>One event, flushed: <c>data: ...</c>, or <c>event: name</c> then <c>data: ...</c>.</summary>
    public static async Task WriteEventAsync(HttpContext context, string? name, string data, CancellationToken cancellationToken)
    {
        string text = name is null ? $"data: {data}\n\n" : $"event: {name}\ndata: {data}\n\n";
        await context.Response.WriteAsync(text, Encoding.UTF8, cancellationToken).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>A Generate call that has answered its first frame; read it once with <see cref="PumpAsync"/>.</summary>
public sealed class OpenGenerateCall : IDisposable
{
    private readonly AsyncServerStreamingCall<GenerateResponse> call;
    private readonly CancellationToken aborted;

    internal OpenGenerateCall(AsyncServerStreamingCall<GenerateResponse> call, CancellationToken aborted)
    {
        this.call = call;
        this.aborted = aborted;
    }

    /// <summary>
    /// Hands every frame, the first included, to <paramref name="frame"/>; a failure of the stream to
    /// <paramref name="failed"/>. The caller going away ends it quietly (the backend call is cancelled with it).
    /// </summary>
    public async Task PumpAsync(Func<GenerateResponse, CancellationToken, Task> frame, Func<FrontError, CancellationToken, Task> failed, ILogger logger)
    {
        try
        {
            do
            {
                await frame(call.ResponseStream.Current, aborted).ConfigureAwait(false);
            }
            while (await call.ResponseStream.MoveNext(aborted).ConfigureAwait(false));
        }
        catch (RpcException e) when (!aborted.IsCancellationRequested)
        {
            await failed(BackendCalls.FromRpc(BackendClients.LanguageCluster, e), aborted).ConfigureAwait(false);
        }
        catch (Exception e) when (aborted.IsCancellationRequested && e is OperationCanceledException or RpcException or IOException)
        {
            Log.SseCallerLeft(logger);
        }
    }

    public void Dispose() => call.Dispose();
}
