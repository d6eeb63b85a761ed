// The browser demo: LiteRT.js (WebAssembly, XNNPACK) runs the exported int8 .tflite; the pixel
// logic (letterbox, un-letterbox, overlay, ellipse/HC) is core.js. URL parameters (for links and
// the automated test): ?model=URL&card=URL&image=URL&px=MM.
import { Tensor, loadAndCompile, loadLiteRt } from "@litertjs/core";
import { letterbox, measure, overlay, trainingDomain, unletterbox } from "./core.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { model: null, card: null, gray: null, h: 0, w: 0, classMap: null, ms: 0 };

function status(text, done = false) {
  $("status").textContent = text;
  if (done) document.body.dataset.status = "done";
}

function fail(err) {
  console.error(err);
  status(`error: ${err.message || err}`);
  document.body.dataset.status = "error";
  document.body.dataset.error = String(err.message || err);
}

async function setModel(bytes, card) {
  state.card = card;
  state.model = await loadAndCompile(new Uint8Array(bytes), { accelerator: "wasm" });
  $("legend").innerHTML = card.classes.slice(1).map((c) =>
    `<span><i style="background:rgb(${c.color.join(",")})"></i>${c.name}</span>`).join("");
  status(`model ready: ${card.name || "model"}, ${card.input.size}x${card.input.size}, ${card.quantization}`);
}

function setImage(img) {
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
  Object.assign(state, { gray, h: c.height, w: c.width });
}

async function segment() {
  if (!state.model || !state.gray) return;
  const size = state.card.input.size;
  const { input, box } = letterbox(state.gray, state.h, state.w, size);
  const tensor = new Tensor(input, [1, size, size, 1]);
  const t0 = performance.now();
  const out = await state.model.run({ image: tensor });
  state.ms = performance.now() - t0;
  const mapTensor = await out.class_map.moveTo("wasm");
  const boxed = new Uint8Array(mapTensor.toTypedArray());
  tensor.delete();
  mapTensor.delete();
  for (const t of Object.values(out)) if (!t.deleted) try { t.delete(); } catch (e) { /* already freed */ }
  state.classMap = unletterbox(boxed, size, box, state.h, state.w);
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
  // The model's training domain beside the numbers: an HC from a phantom-trained model is not
  // an HC from a model trained on real scans.
  const domain = trainingDomain(state.card);
  $("result").textContent = `inference ${state.ms.toFixed(1)} ms (LiteRT.js, WebAssembly) — ` +
    (m ? `HC ${fmt(m.hc)} ${m.units}, BPD ${fmt(m.bpd)} ${m.units}, OFD ${fmt(m.ofd)} ${m.units}` +
         (px ? "" : " (enter the pixel size for millimetres)") : "no head found") +
    ` — model trained on: ${domain || "unknown (the card does not say)"}`;
  document.body.dataset.hc = m ? m.hc.toFixed(3) : "";
  document.body.dataset.trainingDomain = domain || "";
  document.body.dataset.ms = state.ms.toFixed(2);
  status("done", true);
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load image ${src}`));
    img.src = src;
  });
}

async function main() {
  await loadLiteRt(new URL("./node_modules/@litertjs/core/wasm/", location.href).href);
  status("LiteRT.js ready: choose a .tflite, its model card (.json) and an image");
  $("model").onchange = async () => {
    const file = $("model").files[0];
    const cardFile = $("card").files[0];
    if (!cardFile) return status("choose the model card (.json) first: it holds the input size and classes");
    await setModel(await file.arrayBuffer(), JSON.parse(await cardFile.text())).catch(fail);
    await segment().catch(fail);
  };
  $("image").onchange = async () => {
    const url = URL.createObjectURL($("image").files[0]);
    setImage(await loadImage(url));
    await segment().catch(fail);
  };
  $("px").oninput = () => state.classMap && report();
  if (params.get("px")) $("px").value = params.get("px");
  if (params.get("model") && params.get("card")) {
    const [bytes, card] = await Promise.all([
      fetch(params.get("model")).then((r) => r.arrayBuffer()),
      fetch(params.get("card")).then((r) => r.json())]);
    await setModel(bytes, card);
  }
  if (params.get("image")) setImage(await loadImage(params.get("image")));
  await segment();
}

main().catch(fail);
