using System.Text;
using System.Text.Json;
using LLark.Language.Engine.Tokenization;

namespace LLark.Tests.Language.Engine.Tokenization;

/// <summary>One recorded SentencePiece encoding from an encodings.json fixture.</summary>
public sealed record EncodingCase(string Name, string Text, int[] Ids, int[] IdsWithBos, string Decoded);

/// <summary>The tokenizer fixtures, loaded once per test run.</summary>
internal static class TokenizerFixtures
{
    private static readonly Lazy<string> root = new(FindRepositoryRoot);
    private static readonly Lazy<LlamaTextTokenizer> tiny = new(() => LlamaTextTokenizer.Load(TinyModelPath));
    private static readonly Lazy<LlamaTextTokenizer> llama2 = new(() => LlamaTextTokenizer.Load(Llama2ModelPath));
    private static readonly Lazy<IReadOnlyList<EncodingCase>> tinyCases =
        new(() => ReadEncodings(Fixture("llama-tiny/tokenizer/encodings.json")));
    private static readonly Lazy<IReadOnlyList<EncodingCase>> llama2Cases =
        new(() => ReadEncodings(Fixture("llama-tiny/llama2-tokenizer/encodings.json")));

    public static string TinyModelPath => Fixture("llama-tiny/tokenizer/tokenizer.model");

    /// <summary>The Llama-2 tokenizer rebuilt from llama-tokenizer-js (see that folder's README).</summary>
    public static string Llama2ModelPath => Fixture("llama2-tokenizer-model/tokenizer.model");

    public static LlamaTextTokenizer Tiny => tiny.Value;

    public static LlamaTextTokenizer Llama2 => llama2.Value;

    public static IReadOnlyList<EncodingCase> TinyCases => tinyCases.Value;

    public static IReadOnlyList<EncodingCase> Llama2Cases => llama2Cases.Value;

    public static string Fixture(string relativePath) => Path.Combine(root.Value, "tests", "fixtures", relativePath);

    public static JsonElement ReadJson(string relativePath)
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(Fixture(relativePath)));
        return document.RootElement.Clone();
    }

    public static int[] Ints(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetInt32())];

    public static TheoryData<string> Names(IReadOnlyList<EncodingCase> cases) => [.. cases.Select(c => c.Name)];

    private static List<EncodingCase> ReadEncodings(string path)
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(path));
        return
        [
            .. document.RootElement.GetProperty("cases").EnumerateArray().Select(c => new EncodingCase(
                c.GetProperty("name").GetString()!,
                // The exact input bytes; the "text" field may differ where JSON cannot carry a string exactly.
                Encoding.UTF8.GetString(Convert.FromHexString(c.GetProperty("text_utf8_hex").GetString()!)),
                Ints(c.GetProperty("ids")),
                Ints(c.GetProperty("ids_with_bos")),
                c.GetProperty("decoded").GetString()!)),
        ];
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "LLark.Services.sln"))) return directory.FullName;
        }
        throw new DirectoryNotFoundException($"no LLark.Services.sln above {AppContext.BaseDirectory}");
    }
}
