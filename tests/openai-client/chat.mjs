// The official OpenAI Node SDK against the gateway's OpenAI-compatible door.
// usage: node chat.mjs BASE_URL API_KEY CLIP.wav QUESTION MAX_TOKENS
// Prints one JSON object with what each call gave, for tests/LLark.Tests/EndToEnd/OpenAiTests.cs to check.
import { readFileSync } from "node:fs";
import OpenAI from "openai";

const [baseURL, apiKey, clipPath, question, maxTokensText] = process.argv.slice(2);
const maxTokens = Number(maxTokensText);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const out = {};

const models = await client.models.list();
out.models = models.data.map((m) => m.id);
const model = out.models[0];

// 1. Stream an answer about the clip, uploaded as input_audio, with the usage in a last chunk.
const clip = readFileSync(clipPath).toString("base64");
const { data: stream, response } = await client.chat.completions
  .create({
    model,
    messages: [
      {
        role: "user",
        content: [
          { type: "input_audio", input_audio: { data: clip, format: "wav" } },
          { type: "text", text: question },
        ],
      },
    ],
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: maxTokens,
    temperature: 0,
    ignore_eos: true,
  })
  .withResponse();
const chunks = [];
for await (const chunk of stream) chunks.push(chunk);
out.streamed = {
  embeddingIdHeader: response.headers.get("x-llark-embedding-id"),
  embeddingIdExtension: chunks[0]?.llark?.embedding_id ?? null,
  objects: [...new Set(chunks.map((c) => c.object))],
  role: chunks[0]?.choices[0]?.delta?.role ?? null,
  text: chunks.map((c) => c.choices[0]?.delta?.content ?? "").join(""),
  finishReason: chunks.map((c) => c.choices[0]?.finish_reason).find((r) => r) ?? null,
  lastChoices: chunks.at(-1).choices.length,
  usage: chunks.at(-1).usage,
  usageOnOthers: chunks.slice(0, -1).some((c) => c.usage),
};

// 2. The same question, not streamed, about the clip by the id the first answer gave.
const whole = await client.chat.completions.create({
  model,
  messages: [
    {
      role: "user",
      content: [
        { type: "llark_embedding", llark_embedding: { id: out.streamed.embeddingIdHeader } },
        { type: "text", text: question },
      ],
    },
  ],
  max_completion_tokens: maxTokens,
  temperature: 0,
  ignore_eos: true,
});
out.whole = {
  object: whole.object,
  text: whole.choices[0].message.content,
  role: whole.choices[0].message.role,
  finishReason: whole.choices[0].finish_reason,
  usage: whole.usage,
  embeddingId: whole.llark?.embedding_id ?? null,
};

// 3. Errors arrive as the SDK's error classes, from OpenAI's error body.
async function failure(call) {
  try {
    await call();
    return { thrown: false };
  } catch (e) {
    return {
      thrown: true,
      class: e.constructor.name,
      isApiError: e instanceof OpenAI.APIError,
      status: e.status ?? null,
      type: e.type ?? null,
      param: e.param ?? null,
      code: e.code ?? null,
      message: e.message,
    };
  }
}
out.twoChoices = await failure(() =>
  client.chat.completions.create({ model, n: 2, messages: [{ role: "user", content: question }] }),
);
out.badKey = await failure(() =>
  new OpenAI({ baseURL, apiKey: "not-a-key", maxRetries: 0 }).chat.completions.create({
    model,
    messages: [{ role: "user", content: question }],
  }),
);
out.unknownEmbedding = await failure(async () => {
  const s = await client.chat.completions.create({
    model,
    stream: true,
    messages: [
      {
        role: "user",
        content: [
          { type: "llark_embedding", llark_embedding: { id: "0".repeat(64) } },
          { type: "text", text: question },
        ],
      },
    ],
  });
  for await (const _ of s);
});

console.log(JSON.stringify(out));
