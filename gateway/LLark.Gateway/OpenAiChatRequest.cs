using System.Globalization;
using System.Text;
using System.Text.Json;
using LLark.Language.V1;

namespace LLark.Gateway;

/// <summary>A field of a chat completion request that the gateway cannot honour: answered 400 naming <see cref="Param"/>.</summary>
public sealed class OpenAiRequestException(string? param, string message) : Exception(message)
{
    public string? Param { get; } = param;
}

/// <summary>The clip of a conversation, and where in the request it was given (for errors that name it).</summary>
public abstract record ChatClip(string Param);

/// <summary>An <c>input_audio</c> part: the file, embedded by the encoder service before the question is asked.</summary>
public sealed record UploadedClip(byte[] Data, string Format, string Param) : ChatClip(Param);

/// <summary>An <c>llark_embedding</c> part: a clip the encoder service has already embedded, by its id.</summary>
public sealed record CachedClip(string EmbeddingId, string Param) : ChatClip(Param);

/// <summary>
/// An OpenAI chat completion request mapped onto LLark's contract: the messages become <see cref="GenerateRequest.Turns"/>
/// (LLark's template has human and assistant turns under a fixed system line, and one audio span in the first turn),
/// the sampling and stopping fields their <see cref="GenerateRequest"/> counterparts. Anything the contract cannot
/// carry is refused by name rather than dropped.
/// </summary>
public sealed record OpenAiChatRequest(string Model, GenerateRequest Generate, ChatClip? Clip, bool Stream, bool IncludeUsage, bool Logprobs)
{
    public const string EmbeddingPartType = "llark_embedding";

    private static readonly string[] AudioFormats = ["wav", "mp3", "ogg"];

    /// <summary>Parses and checks the body; throws <see cref="OpenAiRequestException"/> naming the first field at fault.</summary>
    public static OpenAiChatRequest Parse(ReadOnlySpan<byte> body)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body.ToArray());
        }
        catch (JsonException e)
        {
            throw new OpenAiRequestException(null, $"the body is not JSON: {e.Message}");
        }
        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new OpenAiRequestException(null, "the body must be a JSON object");
            return Parse(root);
        }
    }

    private static OpenAiChatRequest Parse(JsonElement root)
    {
        string? model = null;
        JsonElement? messages = null;
        bool stream = false, includeUsage = false, logprobs = false;
        JsonElement? streamOptions = null;
        uint? maxTokens = null, maxCompletionTokens = null;
        var sampling = new SamplingParameters();
        var stopping = new StoppingParameters();
        foreach (JsonProperty field in root.EnumerateObject())
        {
            JsonElement v = field.Value;
            string name = field.Name;
            // Every field may be null, which OpenAI's SDKs send for "not given".
            if (v.ValueKind == JsonValueKind.Null) continue;
            switch (name)
            {
                case "model":
                    model = String(v, name);
                    break;
                case "messages":
                    if (v.ValueKind != JsonValueKind.Array) throw Wrong(name, "an array of messages");
                    messages = v;
                    break;
                case "stream":
                    stream = Bool(v, name);
                    break;
                case "stream_options":
                    streamOptions = v;
                    break;
                case "max_tokens":
                    maxTokens = PositiveInt(v, name);
                    break;
                case "max_completion_tokens":
                    maxCompletionTokens = PositiveInt(v, name);
                    break;
                case "temperature":
                    sampling.Temperature = Number(v, name, 0, 2, "from 0 to 2; 0 is greedy");
                    break;
                case "top_p":
                    sampling.TopP = Number(v, name, 0, 1, "in (0, 1]");
                    if (sampling.TopP == 0) throw new OpenAiRequestException(name, "top_p must be in (0, 1]; for greedy decoding set temperature 0");
                    break;
                case "top_k":
                    sampling.TopK = NonNegativeInt(v, name);
                    break;
                case "repetition_penalty":
                    sampling.RepetitionPenalty = Number(v, name, 0, 100, "above 0; 1 is off");
                    if (sampling.RepetitionPenalty == 0) throw new OpenAiRequestException(name, "repetition_penalty must be above 0; 1 is off");
                    break;
                case "ignore_eos":
                    // As vLLM's extension: run to the token limit, for callers that need a fixed length (benchmarks, tests).
                    stopping.IgnoreEos = Bool(v, name);
                    break;
                case "seed":
                    if (v.ValueKind != JsonValueKind.Number || !v.TryGetUInt64(out ulong seed)) throw Wrong(name, "a non-negative integer");
                    sampling.Seed = seed;
                    break;
                case "stop":
                    AddStops(v, stopping);
                    break;
                case "logprobs":
                    logprobs = Bool(v, name);
                    break;
                case "top_logprobs":
                    if (NonNegativeInt(v, name) != 0)
                        throw new OpenAiRequestException(name, "top_logprobs is not supported: the language service returns only the chosen token's log-probability");
                    break;
                case "n":
                    if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n != 1)
                        throw new OpenAiRequestException(name, "n must be 1: the gateway generates one choice per request");
                    break;
                case "frequency_penalty" or "presence_penalty":
                    if (v.ValueKind != JsonValueKind.Number || v.GetDouble() != 0)
                        throw new OpenAiRequestException(name, $"{name} is not supported (only 0); LLark's sampler has repetition_penalty instead");
                    break;
                case "response_format":
                    if (v.ValueKind != JsonValueKind.Object || !v.TryGetProperty("type", out JsonElement type) || type.ValueKind != JsonValueKind.String
                        || type.GetString() != "text")
                        throw new OpenAiRequestException(name, "only response_format {\"type\": \"text\"} is supported");
                    break;
                case "user":
                    // OpenAI's end-user id for its abuse monitoring; the gateway knows callers by their key.
                    String(v, name);
                    break;
                default:
                    throw new OpenAiRequestException(name, $"'{name}' is not supported by this server");
            }
        }

        if (model is null) throw new OpenAiRequestException("model", "model is required (GET /v1/models lists the served model)");
        if (messages is null) throw new OpenAiRequestException("messages", "messages is required");
        if (streamOptions is { } options)
        {
            if (!stream) throw new OpenAiRequestException("stream_options", "stream_options is only allowed with stream: true");
            includeUsage = ReadStreamOptions(options);
        }
        if (maxTokens is { } a && maxCompletionTokens is { } b && a != b)
            throw new OpenAiRequestException("max_completion_tokens", "max_tokens and max_completion_tokens disagree; send one");
        stopping.MaxNewTokens = maxCompletionTokens ?? maxTokens ?? 0;

        var generate = new GenerateRequest { Sampling = sampling, Stopping = stopping };
        if (logprobs) generate.ReturnOptions = new ReturnOptions { Logprobs = true, TokenIds = true };
        ChatClip? clip = AddTurns(messages.Value, generate);
        return new OpenAiChatRequest(model, generate, clip, stream, includeUsage, logprobs);
    }

    private static bool ReadStreamOptions(JsonElement options)
    {
        if (options.ValueKind != JsonValueKind.Object) throw Wrong("stream_options", "an object");
        bool include = false;
        foreach (JsonProperty p in options.EnumerateObject())
        {
            if (p.Value.ValueKind == JsonValueKind.Null) continue;
            if (p.Name != "include_usage") throw new OpenAiRequestException($"stream_options.{p.Name}", $"stream_options.{p.Name} is not supported by this server");
            include = Bool(p.Value, "stream_options.include_usage");
        }
        return include;
    }

    private static void AddStops(JsonElement v, StoppingParameters stopping)
    {
        if (v.ValueKind == JsonValueKind.String)
        {
            stopping.Stop.Add(NonEmpty(v.GetString()!, "stop"));
            return;
        }
        if (v.ValueKind != JsonValueKind.Array) throw Wrong("stop", "a string or an array of strings");
        int i = 0;
        foreach (JsonElement s in v.EnumerateArray())
        {
            string param = string.Create(CultureInfo.InvariantCulture, $"stop[{i++}]");
            if (s.ValueKind != JsonValueKind.String) throw Wrong(param, "a string");
            stopping.Stop.Add(NonEmpty(s.GetString()!, param));
        }
    }

    /// <summary>
    /// Messages to turns. System (and developer) messages come first and are put before the first user message, since
    /// the template's own system line is the one the checkpoint was trained with; user messages in a row are one
    /// turn; each assistant message answers the turn before it; the last message is the user's, the one answered.
    /// </summary>
    private static ChatClip? AddTurns(JsonElement messages, GenerateRequest generate)
    {
        var system = new List<string>();
        ChatClip? clip = null;
        StringBuilder? human = null;
        string humanAt = "";
        int index = 0;
        string lastRole = "";
        foreach (JsonElement message in messages.EnumerateArray())
        {
            string at = string.Create(CultureInfo.InvariantCulture, $"messages[{index++}]");
            if (message.ValueKind != JsonValueKind.Object) throw Wrong(at, "a message object");
            string? role = null;
            JsonElement? content = null;
            foreach (JsonProperty p in message.EnumerateObject())
            {
                if (p.Value.ValueKind == JsonValueKind.Null) continue;
                if (p.Name == "role") role = String(p.Value, $"{at}.role");
                else if (p.Name == "content") content = p.Value;
                else throw new OpenAiRequestException($"{at}.{p.Name}", $"{at}.{p.Name} is not supported by this server");
            }
            if (role is null) throw new OpenAiRequestException($"{at}.role", $"{at} has no role");
            if (content is null) throw new OpenAiRequestException($"{at}.content", $"{at} has no content");
            switch (role)
            {
                case "system" or "developer":
                    if (human is not null || generate.Turns.Count > 0)
                        throw new OpenAiRequestException($"{at}.role", $"{at}: {role} messages must come before the conversation; LLark's template has no later system turn");
                    system.Add(Text(content.Value, at, allowAudio: false, ref clip));
                    break;
                case "user":
                    string text = Text(content.Value, at, allowAudio: true, ref clip);
                    if (human is null)
                    {
                        human = new StringBuilder();
                        humanAt = at;
                        if (generate.Turns.Count == 0 && system.Count > 0) human.AppendJoin('\n', system).Append("\n\n");
                    }
                    else if (text.Length > 0 && human.Length > 0) human.Append('\n');
                    human.Append(text);
                    break;
                case "assistant":
                    if (human is null)
                        throw new OpenAiRequestException($"{at}.role", $"{at}: an assistant message must answer a user message");
                    generate.Turns.Add(new ChatTurn { Human = Question(human, humanAt), Assistant = Text(content.Value, at, allowAudio: false, ref clip) });
                    human = null;
                    break;
                default:
                    throw new OpenAiRequestException($"{at}.role", $"{at}: role '{role}' is not supported; LLark has system, user and assistant messages, and no tools");
            }
            lastRole = role;
        }
        if (human is null)
            throw new OpenAiRequestException("messages", lastRole.Length == 0
                ? "messages is empty" : "the last message must be the user's: it is the one answered");
        generate.Turns.Add(new ChatTurn { Human = Question(human, humanAt) });
        return clip;
    }

    private static string Question(StringBuilder human, string at) =>
        !string.IsNullOrWhiteSpace(human.ToString()) ? human.ToString()
            : throw new OpenAiRequestException($"{at}.content", $"{at} has no text; LLark answers a question (a clip alone is not one)");

    /// <summary>A message's text: its string content, or its text parts joined by newlines; an audio part becomes the clip.</summary>
    private static string Text(JsonElement content, string at, bool allowAudio, ref ChatClip? clip)
    {
        if (content.ValueKind == JsonValueKind.String) return content.GetString()!;
        if (content.ValueKind != JsonValueKind.Array) throw Wrong($"{at}.content", "a string or an array of content parts");
        var texts = new List<string>();
        int j = 0;
        foreach (JsonElement part in content.EnumerateArray())
        {
            string param = string.Create(CultureInfo.InvariantCulture, $"{at}.content[{j++}]");
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out JsonElement typeElement) || typeElement.ValueKind != JsonValueKind.String)
                throw Wrong(param, "a content part with a type");
            string type = typeElement.GetString()!;
            Only(part, param, "type", type);
            switch (type)
            {
                case "text":
                    texts.Add(String(Required(part, "text", param), $"{param}.text"));
                    break;
                case "input_audio" or EmbeddingPartType:
                    if (!allowAudio) throw new OpenAiRequestException($"{param}.type", $"{param}: audio goes in a user message");
                    if (clip is not null)
                        throw new OpenAiRequestException(param, $"{param} is a second clip; a conversation carries one (LLark's template has one audio span), given at {clip.Param}");
                    clip = type == EmbeddingPartType ? Embedding(Required(part, type, param), param) : Upload(Required(part, type, param), param);
                    break;
                default:
                    throw new OpenAiRequestException($"{param}.type", $"{param}: content part type '{type}' is not supported; use text, input_audio or {EmbeddingPartType}");
            }
        }
        return string.Join('\n', texts);
    }

    private static UploadedClip Upload(JsonElement audio, string param)
    {
        if (audio.ValueKind != JsonValueKind.Object) throw Wrong($"{param}.input_audio", "an object with data and format");
        Only(audio, $"{param}.input_audio", "data", "format");
        string data = String(Required(audio, "data", $"{param}.input_audio"), $"{param}.input_audio.data");
        string format = String(Required(audio, "format", $"{param}.input_audio"), $"{param}.input_audio.format");
        if (!AudioFormats.Contains(format))
            throw new OpenAiRequestException($"{param}.input_audio.format", $"{param}.input_audio.format '{format}' is not one of {string.Join(", ", AudioFormats)}");
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(data);
        }
        catch (FormatException)
        {
            throw new OpenAiRequestException($"{param}.input_audio.data", $"{param}.input_audio.data is not base64");
        }
        if (bytes.Length == 0) throw new OpenAiRequestException($"{param}.input_audio.data", $"{param}.input_audio.data is empty");
        return new UploadedClip(bytes, format, param);
    }

    private static CachedClip Embedding(JsonElement embedding, string param)
    {
        string where = $"{param}.{EmbeddingPartType}";
        if (embedding.ValueKind != JsonValueKind.Object) throw Wrong(where, "an object with the id of an embedding");
        Only(embedding, where, "id");
        return new CachedClip(NonEmpty(String(Required(embedding, "id", where), $"{where}.id"), $"{where}.id"), param);
    }

    /// <summary>Refuses any field of <paramref name="o"/> but <paramref name="allowed"/>.</summary>
    private static void Only(JsonElement o, string at, params string[] allowed)
    {
        foreach (JsonProperty p in o.EnumerateObject())
        {
            if (!allowed.Contains(p.Name) && p.Value.ValueKind != JsonValueKind.Null)
                throw new OpenAiRequestException($"{at}.{p.Name}", $"{at}.{p.Name} is not supported by this server");
        }
    }

    private static JsonElement Required(JsonElement o, string name, string at) =>
        o.TryGetProperty(name, out JsonElement v) && v.ValueKind != JsonValueKind.Null ? v
            : throw new OpenAiRequestException($"{at}.{name}", $"{at}.{name} is required");

    private static OpenAiRequestException Wrong(string param, string what) => new(param, $"{param} must be {what}");

    private static string String(JsonElement v, string param) => v.ValueKind == JsonValueKind.String ? v.GetString()! : throw Wrong(param, "a string");

    private static string NonEmpty(string s, string param) => s.Length > 0 ? s : throw Wrong(param, "non-empty");

    private static bool Bool(JsonElement v, string param) => v.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Wrong(param, "true or false"),
    };

    private static uint PositiveInt(JsonElement v, string param) =>
        v.ValueKind == JsonValueKind.Number && v.TryGetUInt32(out uint n) && n > 0 ? n : throw Wrong(param, "a positive integer");

    private static uint NonNegativeInt(JsonElement v, string param) =>
        v.ValueKind == JsonValueKind.Number && v.TryGetUInt32(out uint n) ? n : throw Wrong(param, "a non-negative integer");

    private static float Number(JsonElement v, string param, double min, double max, string range) =>
        v.ValueKind == JsonValueKind.Number && v.GetDouble() is var d && d >= min && d <= max ? (float)d : throw Wrong(param, $"a number {range}");
}
