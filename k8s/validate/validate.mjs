// node validate.mjs FILE...
// Validates every object in the given YAML streams against the Kubernetes API schema of its apiVersion and kind
// (the kubernetes-models classes). Prints one line per object, "ok Kind/name" or "invalid Kind/name: why", and exits
// 1 when any object is invalid or of a kind that has no schema here (only built-in kinds are expected).
// The schemas are the API's OpenAPI ones, which accept unknown fields: a misspelt field is not caught here.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

// "v1" is kubernetes-models/v1, "apps/v1" kubernetes-models/apps/v1.
async function modelFor(apiVersion, kind) {
  try {
    return (await import(`kubernetes-models/${apiVersion}`))[kind];
  } catch {
    return undefined;
  }
}

// kustomize wraps the base64 of generated Secrets over several lines; the API server's decoder skips line breaks,
// the schema's "byte" format does not.
function asTheApiReadsIt(object) {
  if (object.apiVersion === "v1" && object.kind === "Secret" && object.data) {
    for (const key of Object.keys(object.data)) {
      if (typeof object.data[key] === "string") object.data[key] = object.data[key].replace(/[\r\n]/g, "");
    }
  }
  return object;
}

let failures = 0;
let count = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length > 0) {
      console.log(`invalid ${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
      failures++;
      continue;
    }
    const parsed = doc.toJS();
    if (parsed === null || parsed === undefined) continue;
    const object = asTheApiReadsIt(parsed);
    count++;
    const id = `${object.kind}/${object.metadata?.name}`;
    const Model = typeof object.apiVersion === "string" && typeof object.kind === "string"
      ? await modelFor(object.apiVersion, object.kind) : undefined;
    if (Model === undefined) {
      console.log(`invalid ${id}: no schema for ${object.apiVersion} ${object.kind}`);
      failures++;
      continue;
    }
    try {
      new Model(object).validate();
      console.log(`ok ${id}`);
    } catch (e) {
      console.log(`invalid ${id}: ${e.message}`);
      failures++;
    }
  }
}
console.log(`${count} objects, ${failures} invalid`);
process.exit(failures === 0 ? 0 : 1);
