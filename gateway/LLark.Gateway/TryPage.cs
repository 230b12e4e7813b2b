using System.Collections.Frozen;
using System.Reflection;

namespace LLark.Gateway;

/// <summary>
/// A page at <c>/</c> to try LLark in a browser: pick a clip, ask, watch the answer stream, ask again by the clip's
/// embedding id. Its files are embedded in the assembly and served from memory by exact path, so nothing else on disk
/// can be reached through it. The page itself needs no key (it is static); every API call it makes sends one.
/// </summary>
public static class TryPage
{
    /// <summary>Path to (content type, bytes); loaded once, as the files never change while the gateway runs.</summary>
    private static readonly FrozenDictionary<string, (string ContentType, byte[] Body)> Files = Load();

    /// <summary>
    /// Scripts and styles from this origin only (no inline script, so an injected tag cannot run), calls to this origin
    /// only, the waveform's canvas needs nothing more; never framed, so no clickjacking of the key field.
    /// </summary>
    private const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    /// <summary>Whether <paramref name="request"/> asks for one of the page's own files, which need no key.</summary>
    public static bool Serves(HttpRequest request) =>
        (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)) && Files.ContainsKey(request.Path.Value ?? "");

    public static WebApplication MapTryPage(this WebApplication app)
    {
        // Endpoint names must be unique; they label the gateway's request metrics.
        foreach (string path in Files.Keys)
            app.MapMethods(path, [HttpMethods.Get, HttpMethods.Head], (HttpContext context) => Serve(context, path))
                .WithName(path == "/" ? "try-page" : "try-page-" + path.TrimStart('/').Replace('.', '-'));
        return app;
    }

    private static async Task Serve(HttpContext context, string path)
    {
        (string contentType, byte[] body) = Files[path];
        HttpResponse response = context.Response;
        response.ContentType = contentType;
        response.ContentLength = body.Length;
        response.Headers.ContentSecurityPolicy = ContentSecurityPolicy;
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers.XFrameOptions = "DENY";
        response.Headers["Referrer-Policy"] = "no-referrer";
        // Revalidated each load, so a gateway rolled to a new version never runs an old script against a new API.
        response.Headers.CacheControl = "no-cache";
        if (HttpMethods.IsHead(context.Request.Method)) return;
        await response.Body.WriteAsync(body, context.RequestAborted).ConfigureAwait(false);
    }

    private static FrozenDictionary<string, (string, byte[])> Load()
    {
        Assembly assembly = typeof(TryPage).Assembly;
        (string Path, string Resource, string ContentType)[] files =
        [
            ("/", "TryPage/index.html", "text/html; charset=utf-8"),
            ("/try.js", "TryPage/try.js", "text/javascript; charset=utf-8"),
            ("/try.css", "TryPage/try.css", "text/css; charset=utf-8"),
        ];
        var loaded = new Dictionary<string, (string, byte[])>(StringComparer.Ordinal);
        foreach ((string path, string resource, string contentType) in files)
        {
            using Stream stream = assembly.GetManifestResourceStream(resource)
                ?? throw new InvalidOperationException($"the gateway was built without its page file {resource}");
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            loaded[path] = (contentType, copy.ToArray());
        }
        return loaded.ToFrozenDictionary(StringComparer.Ordinal);
    }
}
