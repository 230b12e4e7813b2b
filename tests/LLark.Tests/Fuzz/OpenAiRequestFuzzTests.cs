using System.Text;
using System.Text.Json.Nodes;
using CsCheck;
using LLark.Gateway;

namespace LLark.Tests.Fuzz;

/// <summary>
/// The gateway's mapping of OpenAI chat completion requests onto the language contract, on random bodies built from
/// OpenAI's own field names and values that break them: each maps to a conversation the contract accepts, or is
/// refused with an <see cref="OpenAiRequestException"/> whose param names a field the body has.
/// </summary>
[Trait("Category", FuzzRun.Category)]
public sealed class OpenAiRequestFuzzTests
{
    /// <summary>A fresh node each time (a node has one parent): the JSON text of each value is parsed again.</summary>
    private static readonly Gen<JsonNode?> Scalar = Gen.Frequency(
        (3, Gen.OneOf("null", "true", "false", "0", "1", "-1", "2", "0.5", "2.5", "1e300", "4294967296", "2049", "1.0")),
        (3, Gen.OneOf("", " ", "text", "wav", "flac", "<audio>", "###", "AAAA", "%%%", new string('0', 64), "user", "assistant", "system",
            "developer", "tool", "input_audio", "llark_embedding", "image_url", "Describe it.").Select(s => JsonValue.Create(s).ToJsonString())),
        (1, Gen.String.Select(s => JsonValue.Create(s).ToJsonString())))
        .Select(json => JsonNode.Parse(json));

    private static readonly Gen<string> PartType = Gen.OneOf("text", "input_audio", "llark_embedding", "image_url", "");

    private static readonly Gen<JsonNode?> Payload = Gen.Frequency(
        (2, Scalar),
        (3, Gen.Select(Scalar, Scalar, Scalar, Gen.Bool, (data, format, id, extra) =>
        {
            var o = new JsonObject { ["data"] = data, ["format"] = format, ["id"] = id };
            if (extra) o["extra"] = 1;
            return (JsonNode?)o;
        })),
        (2, Gen.OneOf("UklGRgAAAABXQVZF", "AAAA").Select(d => (JsonNode?)new JsonObject { ["data"] = d, ["format"] = "wav" })));

    private static readonly Gen<JsonNode?> Part = Gen.Select(PartType, Gen.OneOf("text", "input_audio", "llark_embedding", "other"), Payload, Gen.Bool,
        (type, name, payload, typed) =>
        {
            var o = new JsonObject { [name] = payload };
            if (typed) o["type"] = type;
            return (JsonNode?)o;
        });

    private static readonly Gen<JsonNode?> Content = Gen.Frequency(
        (2, Scalar),
        (3, Part.Array[0, 3].Select(parts => (JsonNode?)new JsonArray(parts))));

    private static readonly Gen<JsonNode?> Message = Gen.Select(
        Gen.Frequency((4, Gen.OneOf("user", "assistant", "system", "developer", "tool").Select(r => (JsonNode?)JsonValue.Create(r))), (1, Scalar)),
        Content, Gen.Int[0, 5],
        (role, content, shape) =>
        {
            var o = new JsonObject();
            if (shape != 0) o["role"] = role;
            if (shape != 1) o["content"] = content;
            if (shape == 2) o["name"] = "someone";
            return (JsonNode?)o;
        });

    private static readonly string[] Fields =
    [
        "model", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "repetition_penalty",
        "ignore_eos", "seed", "stop", "logprobs", "top_logprobs", "n", "frequency_penalty", "presence_penalty", "response_format", "user",
        "tools", "logit_bias",
    ];

    private static readonly Gen<JsonNode?> FieldValue = Gen.Frequency(
        (4, Scalar),
        (1, Scalar.Array[0, 3].Select(a => (JsonNode?)new JsonArray(a))),
        (1, Gen.Select(Gen.OneOf("include_usage", "type", "other"), Scalar, (k, v) => (JsonNode?)new JsonObject { [k] = v })));

    /// <summary>Bodies with OpenAI's field names, message roles and part types; also sent through the gateway by ServiceFuzzTests.</summary>
    internal static readonly Gen<string> Body = Gen.Select(
        Gen.Select(Gen.Int[0, Fields.Length - 1], FieldValue, (i, v) => (Fields[i], v)).Array[0, 6],
        Gen.Frequency((6, Message.Array[0, 5].Select(m => (JsonNode?)new JsonArray(m))), (1, Scalar)),
        Gen.Int[0, 9],
        (fields, messages, shape) =>
        {
            var root = new JsonObject();
            if (shape != 0) root["model"] = "llark";
            foreach ((string name, JsonNode? value) in fields) root[name] = value?.Parent is null ? value : value.DeepClone();
            if (shape != 1) root["messages"] = messages;
            return shape == 9 ? root.ToJsonString()[..(root.ToJsonString().Length / 2)] : root.ToJsonString();
        });

    [Fact]
    public void RandomBodiesMapOrNameTheirField() => FuzzRun.Check(Body, Holds, iterations: 400, print: body => body);

    [Theory]
    [InlineData("""{"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Key?"}, {"type": "llark_embedding", "llark_embedding": {"id": "abc"}}]}]}""")]
    [InlineData("""{"model": "m", "messages": [{"role": "user", "content": "A"}, {"role": "user", "content": "B"}, {"role": "assistant", "content": "C"}, {"role": "user", "content": "D"}]}""")]
    public void ValidBodiesMap(string body)
    {
        Holds(body);
        Assert.NotNull(OpenAiChatRequest.Parse(Encoding.UTF8.GetBytes(body)));
    }

    private static void Holds(string body)
    {
        Outcome<OpenAiChatRequest> outcome = Bounded.Run(() => OpenAiChatRequest.Parse(Encoding.UTF8.GetBytes(body)));
        if (outcome.Error is not null)
        {
            OpenAiRequestException refused = Assert.IsType<OpenAiRequestException>(outcome.Error);
            Assert.False(string.IsNullOrWhiteSpace(refused.Message));
            if (refused.Param is null)
            {
                Assert.StartsWith("the body", refused.Message, StringComparison.Ordinal);
                return;
            }
            string field = refused.Param.Split('.', '[')[0];
            // A required field that is missing is named too, as OpenAI names it.
            if (field is "model" or "messages") return;
            Assert.True(JsonNode.Parse(body)!.AsObject().ContainsKey(field), $"param {refused.Param} is not a field of the body");
            return;
        }
        OpenAiChatRequest request = outcome.Result!;
        Assert.NotEmpty(request.Generate.Turns);
        Assert.Equal("", request.Generate.Turns[^1].Assistant);
        Assert.All(request.Generate.Turns, t => Assert.False(string.IsNullOrWhiteSpace(t.Human)));
        Assert.InRange(request.Generate.Sampling.Temperature, 0, 2);
        Assert.InRange(request.Generate.Sampling.TopP, 0, 1);
        Assert.True(request.IncludeUsage is false || request.Stream);
    }
}
