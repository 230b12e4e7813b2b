using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LLark.Data.Instruct;

/// <summary>The endpoint refused the key.</summary>
public sealed class LlmUnauthorizedException(string message) : Exception(message);

/// <summary>The endpoint could not be reached (or kept failing) within the retries.</summary>
public sealed class LlmUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>What came back for one clip: its pairs, or why there are none.</summary>
public sealed record LlmReply(IReadOnlyList<InstructionPair> Pairs, int Attempts, string? Problem, int DroppedItems);

/// <summary>
/// Asks an OpenAI-compatible chat endpoint (POST {url}/v1/chat/completions) for a clip's instruction pairs, as LLark
/// did: the system prompt describes the fields and the three families, the user message is the clip's metadata as
/// JSON, the reply must be a JSON array of {family, task, query, response}. An unusable reply is retried a bounded
/// number of times, then reported.
/// </summary>
public sealed class LlmClient
{
    private readonly HttpClient _http;
    private readonly Uri _endpoint;
    private readonly string _model;
    private readonly string? _key;

    public LlmClient(HttpClient http, string baseUrl, string model, string? key = null, int attempts = 3, TimeSpan? backoff = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentException.ThrowIfNullOrWhiteSpace(baseUrl);
        ArgumentException.ThrowIfNullOrWhiteSpace(model);
        _http = http;
        _endpoint = new Uri(baseUrl.TrimEnd('/') + "/v1/chat/completions");
        _model = model;
        _key = key;
        Attempts = Math.Max(1, attempts);
        Backoff = backoff ?? TimeSpan.FromSeconds(1);
    }

    public int Attempts { get; }

    public TimeSpan Backoff { get; }

    /// <summary>The clip's metadata as the model sees it: every label, no file paths or synthesiser bookkeeping.</summary>
    public static string Metadata(ClipRecord clip)
    {
        ArgumentNullException.ThrowIfNull(clip);
        JsonObject json = JsonNode.Parse(JsonLines.Serialize(clip))!.AsObject();
        foreach (string field in new[] { "audio", "soundfont", "seed", "index", "melody_db", "rms_dbfs", "lead_trim_s", "source", "split" })
            json.Remove(field);
        return json.ToJsonString(JsonLines.Options);
    }

    public async Task<LlmReply> AskAsync(ClipRecord clip, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(clip);
        string body = new JsonObject
        {
            ["model"] = _model,
            ["temperature"] = 0.7,
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "system", ["content"] = Templates.LlmSystemPrompt },
                new JsonObject { ["role"] = "user", ["content"] = Metadata(clip) }),
        }.ToJsonString();
        string? problem = null;
        Exception? lastError = null;
        for (int attempt = 1; attempt <= Attempts; attempt++)
        {
            if (attempt > 1) await Task.Delay(Backoff * (1 << (attempt - 2)), cancel).ConfigureAwait(false);
            using var request = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            if (!string.IsNullOrEmpty(_key)) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _key);
            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, cancel).ConfigureAwait(false);
            }
            catch (HttpRequestException e)
            {
                lastError = e;
                problem = $"cannot reach {_endpoint}: {e.Message}";
                continue;
            }
            catch (TaskCanceledException e) when (!cancel.IsCancellationRequested)
            {
                lastError = e;
                problem = $"{_endpoint} timed out";
                continue;
            }
            using (response)
            {
                if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                    throw new LlmUnauthorizedException($"{_endpoint} refused the key ({(int)response.StatusCode})");
                string text = await response.Content.ReadAsStringAsync(cancel).ConfigureAwait(false);
                if (!response.IsSuccessStatusCode)
                {
                    problem = $"HTTP {(int)response.StatusCode}";
                    lastError = null;
                    continue;
                }
                lastError = null;
                (IReadOnlyList<InstructionPair> pairs, int dropped, string? why) = Parse(clip.ClipId, text);
                if (pairs.Count > 0) return new LlmReply(pairs, attempt, null, dropped);
                problem = why;
            }
        }
        if (lastError is not null)
            throw new LlmUnavailableException($"{problem} (after {Attempts} attempts)", lastError);
        return new LlmReply([], Attempts, problem, 0);
    }

    /// <summary>Reads a chat completion: the first choice's content must hold a JSON array of pairs (a code fence is allowed).</summary>
    public static (IReadOnlyList<InstructionPair> Pairs, int Dropped, string? Problem) Parse(string clipId, string completion)
    {
        string content;
        try
        {
            using JsonDocument doc = JsonDocument.Parse(completion);
            content = doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString() ?? "";
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or IndexOutOfRangeException or InvalidOperationException)
        {
            return ([], 0, $"not a chat completion: {e.Message}");
        }
        int open = content.IndexOf('[', StringComparison.Ordinal), close = content.LastIndexOf(']');
        if (open < 0 || close < open) return ([], 0, "the reply holds no JSON array");
        JsonArray items;
        try
        {
            items = JsonNode.Parse(content[open..(close + 1)]) as JsonArray ?? throw new JsonException("not an array");
        }
        catch (JsonException e)
        {
            return ([], 0, $"the reply's array is not valid JSON: {e.Message}");
        }
        var pairs = new List<InstructionPair>();
        int dropped = 0;
        foreach (JsonNode? item in items)
        {
            string? family = Text(item, "family")?.ToLowerInvariant(), query = Text(item, "query"), response = Text(item, "response");
            if (family is null || !InstructionPair.Families.Contains(family) || string.IsNullOrWhiteSpace(query) || string.IsNullOrWhiteSpace(response)
                || InstructionGenerator.IsReserved(query))
            {
                dropped++;
                continue;
            }
            pairs.Add(new InstructionPair { ClipId = clipId, Family = family, Task = Text(item, "task"), Query = query.Trim(), Response = response.Trim() });
        }
        return (pairs, dropped, pairs.Count == 0 ? $"none of the reply's {items.Count} items is a usable pair" : null);
    }

    private static string? Text(JsonNode? item, string field) =>
        item is JsonObject o && o.TryGetPropertyValue(field, out JsonNode? v) && v is JsonValue value && value.TryGetValue(out string? s) ? s : null;
}
