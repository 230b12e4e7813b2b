using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace LLark.Data;

/// <summary>A line of a JSON-lines file that could not be read, with its 1-based line number and why.</summary>
public sealed record JsonLineError(string File, int Line, string Message)
{
    public override string ToString() => $"{File}:{Line}: {Message}";
}

/// <summary>
/// Reads and appends JSON-lines files (one object a line). A corrupt line is reported with its number and skipped,
/// never fatal, so one bad line cannot cost a whole dataset; appends are flushed a line at a time, so work already
/// written survives a crash (a torn last line is reported as corrupt and skipped on the next read).
/// </summary>
public static class JsonLines
{
    public static readonly JsonSerializerOptions Options = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = false,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Reads every well-formed line; <paramref name="errors"/> receives the others. Blank lines are skipped.</summary>
    public static List<T> Read<T>(string path, List<JsonLineError> errors, Func<T, string?>? validate = null)
    {
        ArgumentNullException.ThrowIfNull(errors);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file", path);
        var items = new List<T>();
        int number = 0;
        foreach (string line in File.ReadLines(path, Encoding.UTF8))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            T? item;
            try
            {
                item = JsonSerializer.Deserialize<T>(line, Options);
            }
            catch (JsonException e)
            {
                errors.Add(new JsonLineError(path, number, $"not valid JSON: {e.Message}"));
                continue;
            }
            if (item is null)
            {
                errors.Add(new JsonLineError(path, number, "null instead of an object"));
                continue;
            }
            string? problem = validate?.Invoke(item);
            if (problem is not null)
            {
                errors.Add(new JsonLineError(path, number, problem));
                continue;
            }
            items.Add(item);
        }
        return items;
    }

    public static string Serialize<T>(T item) => JsonSerializer.Serialize(item, Options);

    /// <summary>Writes the whole file atomically (temporary file, then rename).</summary>
    public static void Write<T>(string path, IEnumerable<T> items)
    {
        ArgumentNullException.ThrowIfNull(items);
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string temp = full + ".tmp";
        using (var writer = new StreamWriter(temp, false, new UTF8Encoding(false)))
        {
            foreach (T item in items) writer.WriteLine(Serialize(item));
        }
        File.Move(temp, full, overwrite: true);
    }
}

/// <summary>Appends lines to a JSON-lines file, each one flushed to disk before the call returns.</summary>
public sealed class JsonLinesAppender : IDisposable
{
    private readonly FileStream _stream;
    private readonly Lock _gate = new();

    public JsonLinesAppender(string path)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        _stream = new FileStream(full, FileMode.Append, FileAccess.Write, FileShare.Read);
        // A line torn by an earlier crash must not glue itself to the next one.
        if (_stream.Length > 0)
        {
            using var check = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            check.Seek(-1, SeekOrigin.End);
            if (check.ReadByte() != '\n') _stream.Write("\n"u8);
        }
    }

    public void Append<T>(T item)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(JsonLines.Serialize(item) + "\n");
        lock (_gate)
        {
            _stream.Write(bytes);
            _stream.Flush(flushToDisk: true);
        }
    }

    public void Dispose() => _stream.Dispose();
}
