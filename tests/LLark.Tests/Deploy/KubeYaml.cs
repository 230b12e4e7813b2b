using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace LLark.Tests.Deploy;

/// <summary>
/// YAML streams as JSON nodes, typed as Kubernetes reads them: plain scalars that look like integers, booleans or null
/// are those; quoted ones stay strings.
/// </summary>
internal static partial class KubeYaml
{
    /// <summary>Every document of a stream; empty documents are left out. Throws <see cref="YamlException"/> on bad YAML.</summary>
    public static List<JsonNode> Parse(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return [.. stream.Documents.Select(d => ToJson(d.RootNode)).OfType<JsonNode>()];
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv =>
            KeyValuePair.Create(((YamlScalarNode)kv.Key).Value ?? "", ToJson(kv.Value)))),
        YamlSequenceNode list => new JsonArray([.. list.Children.Select(ToJson)]),
        YamlScalarNode scalar => Scalar(scalar),
        _ => throw new YamlException($"unsupported YAML node {node.NodeType} at {node.Start}"),
    };

    private static JsonNode? Scalar(YamlScalarNode scalar)
    {
        string value = scalar.Value ?? "";
        if (scalar.Style is not ScalarStyle.Plain) return JsonValue.Create(value);
        if (value is "" or "~" or "null") return null;
        // Parsed from JSON text, so that the value converts to int, long or double as a reader asks.
        if (value is "true" or "false" || Integer().IsMatch(value)) return JsonNode.Parse(value);
        return JsonValue.Create(value);
    }

    [GeneratedRegex(@"^-?[0-9]+$")]
    private static partial Regex Integer();
}
