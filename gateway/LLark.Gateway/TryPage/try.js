// The try page: one clip, a conversation about it over the gateway's OpenAI-compatible door, streamed.
"use strict";

// sessionStorage, not localStorage: the key lasts as long as the tab and is gone when it closes, so it is never left on
// disk or shared with every other tab of this origin; typing it again in a new tab is the price.
const KEY_ITEM = "llark-api-key";
const FORMATS = { wav: "wav", wave: "wav", mp3: "mp3", mpeg: "mp3", ogg: "ogg", oga: "ogg" };

const $ = (id) => document.getElementById(id);
const keyInput = $("key"), fileInput = $("file"), drop = $("drop"), clipInfo = $("clip"), canvas = $("wave");
const log = $("log"), form = $("ask"), question = $("question"), maxTokens = $("max"), send = $("send"), status = $("status");

// The clip as the first question sends it; once an answer names its embedding id, only the id is sent.
let clip = null;          // { name, format, base64 }
let embeddingId = null;
let turns = [];           // [{ user, assistant }] of this clip's conversation
let busy = false;

keyInput.value = sessionStorage.getItem(KEY_ITEM) || "";
keyInput.addEventListener("input", () => {
  if (keyInput.value) sessionStorage.setItem(KEY_ITEM, keyInput.value);
  else sessionStorage.removeItem(KEY_ITEM);
});
$("forget").addEventListener("click", () => { keyInput.value = ""; sessionStorage.removeItem(KEY_ITEM); });

fileInput.addEventListener("change", () => { if (fileInput.files.length) loadClip(fileInput.files[0]); });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files.length) loadClip(e.dataTransfer.files[0]);
});

form.addEventListener("submit", (e) => { e.preventDefault(); ask(); });

function formatOf(file) {
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  return FORMATS[ext] || FORMATS[(file.type.split("/")[1] || "").toLowerCase()] || null;
}

async function loadClip(file) {
  const format = formatOf(file);
  if (!format) { say(`${file.name}: not a wav, mp3 or ogg file`); return; }
  const bytes = await file.arrayBuffer();
  clip = { name: file.name, format, base64: await base64Of(file) };
  embeddingId = null;
  turns = [];
  log.replaceChildren();
  clipInfo.textContent = `${file.name} (${(bytes.byteLength / 1024).toFixed(0)} KB)`;
  enable();
  try {
    // An offline context decodes without an audio device or a user gesture; decodeAudioData takes the buffer over.
    const audio = await new OfflineAudioContext(1, 1, 44100).decodeAudioData(bytes.slice(0));
    drawWave(audio);
    clipInfo.textContent = `${file.name}: ${audio.duration.toFixed(1)} s, ${audio.sampleRate} Hz, ${audio.numberOfChannels} ch`;
  } catch (err) {
    // The encoder may still read what this browser cannot; the question decides.
    clearWave();
    clipInfo.textContent = `${file.name}: this browser cannot decode it to draw (${err.message || err})`;
  }
  question.focus();
}

function base64Of(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).slice(String(reader.result).indexOf(",") + 1));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function clearWave() {
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
}

// Each pixel column shows the lowest and highest sample under it, all channels mixed down.
function drawWave(audio) {
  const width = canvas.width = canvas.clientWidth * (window.devicePixelRatio || 1) || canvas.width;
  const height = canvas.height;
  const channels = [];
  for (let c = 0; c < audio.numberOfChannels; c++) channels.push(audio.getChannelData(c));
  const per = Math.max(1, Math.floor(audio.length / width));
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  g.fillStyle = "#3451b2";
  const mid = height / 2;
  for (let x = 0; x < width; x++) {
    let lo = 1, hi = -1;
    const start = x * per, end = Math.min(audio.length, start + per);
    for (let i = start; i < end; i++) {
      let s = 0;
      for (const data of channels) s += data[i];
      s /= channels.length;
      if (s < lo) lo = s;
      if (s > hi) hi = s;
    }
    if (hi < lo) continue;
    g.fillRect(x, mid - hi * mid, 1, Math.max(1, (hi - lo) * mid));
  }
}

function enable() {
  question.disabled = busy || !clip;
  send.disabled = busy || !clip;
  log.setAttribute("aria-busy", String(busy));
}

function say(text) { status.textContent = text; }

function bubble(kind, text) {
  const div = document.createElement("div");
  div.className = `turn ${kind}`;
  div.textContent = text;
  log.append(div);
  div.scrollIntoView({ block: "nearest" });
  return div;
}

// The whole conversation goes each time (the service keeps none); the clip rides in the first user message, as the
// upload until an answer has named its id, then as that id.
function messages(text) {
  const clipPart = embeddingId
    ? { type: "llark_embedding", llark_embedding: { id: embeddingId } }
    : { type: "input_audio", input_audio: { data: clip.base64, format: clip.format } };
  const all = [...turns, { user: text }];
  const out = [];
  all.forEach((t, i) => {
    out.push({ role: "user", content: i === 0 ? [clipPart, { type: "text", text: t.user }] : t.user });
    if (t.assistant !== undefined) out.push({ role: "assistant", content: t.assistant });
  });
  return out;
}

async function ask() {
  const text = question.value.trim();
  if (!text || !clip || busy) return;
  const key = keyInput.value.trim();
  if (!key) { say("Enter an API key first."); keyInput.focus(); return; }
  const body = { model: "llark", stream: true, stream_options: { include_usage: true }, messages: messages(text) };
  const max = parseInt(maxTokens.value, 10);
  if (max > 0) body.max_tokens = max;

  busy = true;
  enable();
  question.value = "";
  bubble("user", text);
  const answer = bubble("assistant", "");
  say(embeddingId ? "Asking about the same clip (by its id)..." : "Uploading the clip and asking...");
  let reply = "";
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json", "authorization": `Bearer ${key}` },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(await errorOf(response));
    const id = response.headers.get("x-llark-embedding-id");
    if (id) embeddingId = id;
    let usage = null;
    for await (const data of events(response.body)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.llark && chunk.llark.embedding_id) embeddingId = chunk.llark.embedding_id;
      if (chunk.usage) usage = chunk.usage;
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) {
        reply += delta.content;
        answer.textContent = reply;
      }
    }
    turns.push({ user: text, assistant: reply });
    say(usage ? `${usage.completion_tokens} tokens; prompt ${usage.prompt_tokens} (audio ${usage.prompt_tokens_details?.audio_tokens ?? "?"}).` : "Done.");
  } catch (err) {
    if (!reply) answer.remove();
    bubble("error", err.message || String(err));
    say("");
  } finally {
    busy = false;
    enable();
    question.focus();
  }
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body.error && body.error.message) return `${response.status}: ${body.error.message}`;
  } catch { /* not JSON: the status says enough */ }
  return `${response.status} ${response.statusText}`;
}

// Server-sent events over fetch, since EventSource can neither POST a body nor send an Authorization header:
// yields each event's data (its data: lines joined by newlines).
async function* events(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data) yield data;
    }
  }
}
