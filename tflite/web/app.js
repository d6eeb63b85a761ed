// The browser demo: LiteRT.js (WebAssembly, XNNPACK) runs the exported int8 .tflite; the pixel
// logic (letterbox, un-letterbox, overlay, ellipse/HC, the head confidence and its verdict) is
// core.js. URL parameters (for links and the automated test): ?model=URL&card=URL&image=URL&px=MM,
// and &runs=N to time N inferences after a warm-up and report their median.
import { Tensor, loadAndCompile, loadLiteRt } from "@litertjs/core";
import { LOW_CONFIDENCE, UNKNOWN_TRAINING_DOMAIN, bandWidthPx, cardStructureThresholds, cardThreshold,
         confidenceLine, dequantize, headConfidence, letterbox, lowStructures, measure, overlay, structureFlag,
         trainingDomain, trainingDomainLine, unletterbox, unletterboxProbs, verdict } from "./core.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { model: null, card: null, name: "", image: "", gray: null, h: 0, w: 0, classMap: null, ms: 0,
                timing: "", confidence: null };
const LOAD_A_MODEL = "Load a model: choose an exported .tflite and its model card (.json), in either order, " +
  "then an image. `make demo` writes them to runs/quickstart/stages/export/ (student_int8.tflite, " +
  "student_int8.json); see tflite/web/README.md.";

// data-status is what the automated test waits on: loading, need-model, working, ready, done, error.
function status(kind, text) {
  $("status").textContent = text;
  document.body.dataset.status = kind;
}

function fail(err) {
  console.error(err);
  status("error", `error: ${err.message || err}`);
  document.body.dataset.error = String(err.message || err);
}

// Set synchronously at the start of every user action, so a driver that dispatched the change
// event knows the page is busy until the status moves on.
function working(text) {
  delete document.body.dataset.error;
  status("working", text);
}

const baseName = (url) => decodeURIComponent(String(url).split("?")[0].split(/[\\/]/).filter(Boolean).pop() || url);

function parseCard(text, source) {
  const hint = "choose the .json that lightseg export wrote beside the .tflite";
  let card;
  try {
    card = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source} is not a model card (not JSON): ${hint}`);
  }
  if (!card || !Array.isArray(card.classes) || !Number.isInteger(card.input && card.input.size)) {
    throw new Error(`${source} is not a lightseg model card (no classes or input size): ${hint}`);
  }
  return card;
}

async function checkPair(bytes, card, modelName, cardName) {
  // With the files chosen separately a card can belong to another export; its SHA-256 says. The
  // check is skipped where crypto.subtle is missing (plain http on a host other than localhost).
  if (typeof card.sha256 !== "string" || !(globalThis.crypto && crypto.subtle)) return;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  if (hex !== card.sha256.toLowerCase()) {
    throw new Error(`${cardName} is the card of another model (its SHA-256 is not ${modelName}'s): ` +
                    `choose the .json exported with ${modelName}`);
  }
}

async function setModel(bytes, card, modelName, cardName) {
  await checkPair(bytes, card, modelName, cardName);
  const compiled = await loadAndCompile(new Uint8Array(bytes), { accelerator: "wasm" });
  if (state.model) state.model.delete();
  Object.assign(state, { model: compiled, card, name: modelName, classMap: null });
  $("legend").innerHTML = card.classes.slice(1).map((c) =>
    `<span><i style="background:rgb(${c.color.join(",")})"></i>${c.name}</span>`).join("");
  const domain = trainingDomain(card);
  $("model-info").textContent = `model: ${modelName}${card.name ? ` (${card.name})` : ""}, ` +
    `${card.input.size}x${card.input.size}, ${card.quantization || "?"}; trained on: ` +
    (domain || UNKNOWN_TRAINING_DOMAIN);
  Object.assign(document.body.dataset, { model: modelName, modelCard: card.name || "", trainingDomain: domain || "" });
}

function setImage(img, name) {
  const c = $("input");
  c.width = img.naturalWidth || img.width;
  c.height = img.naturalHeight || img.height;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const rgba = ctx.getImageData(0, 0, c.width, c.height).data;
  const gray = new Uint8Array(c.width * c.height);
  // BT.601 luma (a grayscale PNG has R = G = B, so this is exact for it), as the Android app.
  for (let k = 0; k < gray.length; k++) {
    gray[k] = Math.round(0.299 * rgba[4 * k] + 0.587 * rgba[4 * k + 1] + 0.114 * rgba[4 * k + 2]);
  }
  Object.assign(state, { gray, h: c.height, w: c.width, image: name });
}

// One inference: the class map, and (withProbs) the raw probs tensor of the same run, which the
// confidence reads (Uint8Array quantized per the card, or Float32Array).
async function infer(tensor, withProbs = false) {
  const t0 = performance.now();
  const out = await state.model.run({ image: tensor });
  const ms = performance.now() - t0;
  const read = async (t) => {
    const moved = await t.moveTo("wasm");
    const data = moved.toTypedArray().slice();
    moved.delete();
    return data;
  };
  const boxed = new Uint8Array(await read(out.class_map));
  const probs = withProbs ? await read(out.probs) : null;
  for (const t of Object.values(out)) if (!t.deleted) try { t.delete(); } catch (e) { /* already freed */ }
  return { boxed, probs, ms };
}

// The head confidence of this image (core.js headConfidence, Python's head_confidence on the same
// class map and probabilities); null when the card does not say how the probs tensor is quantized.
function confidence(probsRaw, box, size) {
  const spec = state.card.outputs && state.card.outputs.probs;
  if (!spec || (probsRaw instanceof Uint8Array && !spec.quantization)) return null;
  const names = state.card.classes.map((c) => c.name);
  const probs = unletterboxProbs(dequantize(probsRaw, spec.quantization), size, names.length, box, state.h, state.w);
  return headConfidence(probs, state.classMap, state.h, state.w, names, bandWidthPx(state.h, state.w, size));
}

async function segment() {
  const size = state.card.input.size;
  const { input, box } = letterbox(state.gray, state.h, state.w, size);
  const tensor = new Tensor(input, [1, size, size, 1]);
  const first = await infer(tensor, true);
  // The first run pays XNNPACK's one-off packing; a latency worth quoting is the steady state.
  const runs = Math.max(0, parseInt(params.get("runs") || "0", 10) || 0);
  const times = [];
  for (let k = 0; k < runs; k++) times.push((await infer(tensor)).ms);
  tensor.delete();
  times.sort((a, b) => a - b);
  state.ms = runs ? times[Math.floor((runs - 1) / 2)] : first.ms;
  state.timing = runs ? `median of ${runs} runs after a warm-up` : "first run";
  Object.assign(document.body.dataset, { msFirst: first.ms.toFixed(2), runs: String(runs),
                                         msAll: times.map((t) => t.toFixed(2)).join(" ") });
  const boxed = first.boxed;
  state.classMap = unletterbox(boxed, size, box, state.h, state.w);
  state.confidence = confidence(first.probs, box, size);
  const colors = state.card.classes.map((c) => c.color);
  const canvas = $("overlay");
  canvas.width = state.w;
  canvas.height = state.h;
  canvas.getContext("2d").putImageData(new ImageData(overlay(state.gray, state.classMap, colors), state.w, state.h), 0, 0);
  // For the automated test: the letterboxed class map the model produced.
  document.body.dataset.classMap = btoa(String.fromCharCode(...boxed));
  report();
}

function report() {
  const px = parseFloat($("px").value) || null;
  const m = measure(state.classMap, state.h, state.w, state.card.classes.map((c) => c.name), px);
  const fmt = (v) => v.toFixed(1);
  // The model's confidence beside the numbers, judged against the card's calibrated threshold as
  // lightseg measure judges it; below it the measurement is flagged "low confidence: do not use".
  const conf = state.confidence, threshold = cardThreshold(state.card);
  const judged = conf ? verdict(conf.score, threshold) : "unavailable";
  const confText = conf ? confidenceLine(conf.score, threshold)
    : "confidence unavailable (the card does not describe the probs tensor)";
  $("result").textContent = `inference ${state.ms.toFixed(1)} ms (${state.timing}; LiteRT.js, WebAssembly) — ` +
    (m ? `HC ${fmt(m.hc)} ${m.units}, BPD ${fmt(m.bpd)} ${m.units}, OFD ${fmt(m.ofd)} ${m.units}` +
         (px ? "" : " (enter the pixel size for millimetres)") : "no head found") +
    ` — ${confText}` +
    // The model's training domain beside the numbers: an HC from a phantom-trained model is not
    // an HC from a model trained on real scans.
    ` — ${trainingDomainLine(state.card)}`;
  // Each structure below its own calibrated margin threshold is flagged too (lightseg measure's flags).
  const lowParts = conf ? lowStructures(conf.structures, cardStructureThresholds(state.card)) : [];
  const flags = [...(judged === "low" ? [LOW_CONFIDENCE] : []), ...lowParts.map(structureFlag)];
  $("flag").textContent = flags.join("; ");
  $("flag").hidden = flags.length === 0;
  Object.assign(document.body.dataset, { confidence: conf ? String(conf.score) : "", confidenceStatus: judged,
                                         lowStructures: lowParts.join("|") });
  document.body.dataset.hc = m ? m.hc.toFixed(3) : "";
  document.body.dataset.ms = state.ms.toFixed(2);
  status("done", `done: ${state.image} segmented by ${state.name}`);
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load image ${src}`));
    img.src = src;
  });
}

async function afterModel() {
  if (state.gray) return segment();
  status("ready", `model ready (${state.name}): choose an image`);
}

async function onModelPick() {
  working("reading the model files…");
  const modelFile = $("model").files[0];
  const cardFile = $("card").files[0];
  if (!modelFile || !cardFile) {
    const stem = modelFile ? modelFile.name.replace(/\.tflite$/i, "") : "";
    return status("need-model", modelFile
      ? `${modelFile.name} chosen: now choose its model card (${stem}.json, beside it)`
      : `${cardFile.name} chosen: now choose its model (.tflite)`);
  }
  const card = parseCard(await cardFile.text(), cardFile.name);
  await setModel(await modelFile.arrayBuffer(), card, modelFile.name, cardFile.name);
  await afterModel();
}

async function onImagePick() {
  working("reading the image…");
  const file = $("image").files[0];
  const url = URL.createObjectURL(file);
  setImage(await loadImage(url), file.name);
  URL.revokeObjectURL(url);
  if (state.model) return segment();
  status("need-model", `image ${file.name} ready. ${LOAD_A_MODEL}`);
}

/** Load ?model= and ?card=; a file the server does not have goes into ``missing`` (not an error). */
async function loadFromUrls(modelUrl, cardUrl, missing) {
  const [m, c] = await Promise.all([fetch(modelUrl), fetch(cardUrl)]);
  for (const [url, r] of [[modelUrl, m], [cardUrl, c]]) if (!r.ok) missing.push(`${url} (HTTP ${r.status})`);
  if (!m.ok || !c.ok) return;
  await setModel(await m.arrayBuffer(), parseCard(await c.text(), cardUrl), baseName(modelUrl), cardUrl);
}

async function main() {
  status("loading", "loading LiteRT.js…");
  await loadLiteRt(new URL("./node_modules/@litertjs/core/wasm/", location.href).href);
  $("model").onchange = $("card").onchange = () => onModelPick().catch(fail);
  $("image").onchange = () => onImagePick().catch(fail);
  $("px").oninput = () => state.classMap && report();
  if (params.get("px")) $("px").value = params.get("px");
  const [modelUrl, cardUrl, imageUrl] = ["model", "card", "image"].map((k) => params.get(k));
  const missing = [];
  if (modelUrl && cardUrl) await loadFromUrls(modelUrl, cardUrl, missing);
  else if (modelUrl || cardUrl) missing.push(`the ${modelUrl ? "card" : "model"} (the URL gives ?model= and ?card= together)`);
  if (imageUrl) {
    const img = await loadImage(imageUrl).catch(() => null);
    if (img) setImage(img, baseName(imageUrl));
    else missing.push(`${imageUrl} (cannot load)`);
  }
  document.body.dataset.missing = missing.join("; ");
  if (!state.model) {
    // A fresh clone has no model at the URL a link or README gave: say what to do, not a parse error.
    return status("need-model", (missing.length ? `Not on this server: ${missing.join("; ")}. ` : "") + LOAD_A_MODEL);
  }
  if (missing.length) throw new Error(`cannot load image ${imageUrl}: check the image= URL or choose an image`);
  await afterModel();
}

main().catch(fail);
