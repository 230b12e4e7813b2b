using System.Text.Json;
using System.Text.RegularExpressions;
using LLark.Tests.TestSupport;

namespace LLark.Tests.Deploy;

/// <summary>
/// A Dockerfile read the way the builder reads it: line continuations joined, comments dropped, instructions grouped
/// by stage, and the global ARGs (those before the first FROM) with their defaults. Enough to check the files without
/// a container engine.
/// </summary>
internal sealed partial class Dockerfile
{
    public sealed record Instruction(string Keyword, string Arguments);

    public sealed record Stage(string From, string? Name, IReadOnlyList<Instruction> Instructions)
    {
        public IEnumerable<string> All(string keyword) =>
            Instructions.Where(i => i.Keyword == keyword).Select(i => i.Arguments);

        /// <summary>ENV key=value pairs in order (a later one replaces an earlier one).</summary>
        public IEnumerable<KeyValuePair<string, string>> Env =>
            All("ENV").SelectMany(a => a.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
                .Select(pair => pair.Split('=', 2)).Select(kv => KeyValuePair.Create(kv[0], kv.Length > 1 ? kv[1] : ""));
    }

    private Dockerfile(string path, IReadOnlyDictionary<string, string> globalArgs, IReadOnlyList<Stage> stages)
    {
        Path = path;
        GlobalArgs = globalArgs;
        Stages = stages;
    }

    public string Path { get; }

    public IReadOnlyDictionary<string, string> GlobalArgs { get; }

    public IReadOnlyList<Stage> Stages { get; }

    public Stage Final => Stages[^1];

    public Stage Named(string name) => Stages.SingleOrDefault(s => s.Name == name) ?? throw new KeyNotFoundException($"{Path} has no stage {name}");

    /// <summary>docker/{service}.Dockerfile.</summary>
    public static Dockerfile Load(string service) =>
        Parse(System.IO.Path.Combine(RepoPaths.Root, "docker", $"{service}.Dockerfile"));

    public static Dockerfile Parse(string path)
    {
        var instructions = new List<Instruction>();
        string pending = "";
        foreach (string raw in File.ReadAllLines(path))
        {
            string line = raw.Trim();
            if (line.StartsWith('#') || (line.Length == 0 && pending.Length == 0)) continue;
            if (line.EndsWith('\\'))
            {
                pending += line[..^1] + " ";
                continue;
            }
            string whole = (pending + line).Trim();
            pending = "";
            if (whole.Length == 0) continue;
            int space = whole.IndexOf(' ', StringComparison.Ordinal);
            instructions.Add(space < 0 ? new Instruction(whole.ToUpperInvariant(), "")
                : new Instruction(whole[..space].ToUpperInvariant(), whole[(space + 1)..].Trim()));
        }

        var globalArgs = new Dictionary<string, string>(StringComparer.Ordinal);
        var stages = new List<Stage>();
        List<Instruction>? current = null;
        foreach (Instruction i in instructions)
        {
            if (i.Keyword == "FROM")
            {
                Match m = FromLine().Match(i.Arguments);
                if (!m.Success) throw new FormatException($"{path}: FROM {i.Arguments}");
                current = [];
                stages.Add(new Stage(m.Groups["image"].Value, m.Groups["name"].Success ? m.Groups["name"].Value : null, current));
            }
            else if (current is null)
            {
                if (i.Keyword != "ARG") throw new FormatException($"{path}: {i.Keyword} before the first FROM");
                string[] kv = i.Arguments.Split('=', 2);
                globalArgs[kv[0]] = kv.Length > 1 ? kv[1] : "";
            }
            else
            {
                current.Add(i);
            }
        }
        return new Dockerfile(path, globalArgs, stages);
    }

    /// <summary>The image a FROM names, with global ARGs (or the given overrides) put in.</summary>
    public string Resolve(string from, IReadOnlyDictionary<string, string>? buildArgs = null) =>
        Variable().Replace(from, m =>
        {
            string name = m.Groups[1].Value;
            return buildArgs?.GetValueOrDefault(name) ?? GlobalArgs.GetValueOrDefault(name) ?? throw new KeyNotFoundException($"{Path}: no ARG {name}");
        });

    /// <summary>The final stage and the stages it is built FROM, base first.</summary>
    public IReadOnlyList<Stage> FinalChain(IReadOnlyDictionary<string, string>? buildArgs = null)
    {
        var chain = new List<Stage> { Final };
        while (Stages.FirstOrDefault(s => s.Name == Resolve(chain[0].From, buildArgs)) is { } parent) chain.Insert(0, parent);
        return chain;
    }

    /// <summary>The environment the final image runs with (what this file sets; the base image's own are not known here).</summary>
    public IReadOnlyDictionary<string, string> FinalEnv(IReadOnlyDictionary<string, string>? buildArgs = null)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (Stage stage in FinalChain(buildArgs))
        {
            foreach ((string key, string value) in stage.Env) env[key] = value;
        }
        return env;
    }

    public IReadOnlyList<string> EntryPoint => JsonSerializer.Deserialize<string[]>(Final.All("ENTRYPOINT").Single()) ?? [];

    [GeneratedRegex(@"^(--\S+\s+)*(?<image>\S+)(\s+AS\s+(?<name>\S+))?$", RegexOptions.IgnoreCase)]
    private static partial Regex FromLine();

    [GeneratedRegex(@"\$\{(\w+)\}")]
    private static partial Regex Variable();
}
