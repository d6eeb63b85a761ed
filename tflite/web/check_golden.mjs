// The browser demo's pixel logic (core.js) against golden vectors written by Python
// (`lightseg export RUN --golden DIR`), in node, without a browser:
//   node check_golden.mjs DIR [--rtol 1e-9] [--ctol 1e-4]
// Per case: the letterbox must match Python bit for bit, the un-letterboxed class map pixel for
// pixel, HC / BPD / OFD / centre (pixels) within --rtol of Python's, and the head confidence
// (from the golden probabilities, dequantized per the card and un-letterboxed) within --ctol of
// Python's score and each component (golden.py's CONFIDENCE_ATOL: same inputs, only float
// rounding differs), with Python's verdict at every threshold the case lists; then golden.json's
// verdict table (half-up rounding edges); and the structures flagged at each case's
// structure_flags thresholds. Prints one JSON line per case and a summary line; exits 1 when
// something fails, 2 on bad arguments.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { bandWidthPx, dequantize, headConfidence, letterbox, lowStructures, measure, unletterbox,
         unletterboxProbs, verdict } from "./core.js";

const args = process.argv.slice(2);
const dir = args[0];
const option = (name, value) => (args.indexOf(name) > 0 ? Number(args[args.indexOf(name) + 1]) : value);
const rtol = option("--rtol", 1e-9), ctol = option("--ctol", 1e-4);
if (!dir || !Number.isFinite(rtol) || !Number.isFinite(ctol)) {
  console.error("usage: node check_golden.mjs GOLDEN_DIR [--rtol 1e-9] [--ctol 1e-4]");
  process.exit(2);
}

const manifest = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8"));
const card = JSON.parse(fs.readFileSync(path.join(dir, manifest.model.replace(/\.tflite$/, ".json")), "utf8"));
const probsSpec = card.outputs.probs;
const channels = probsSpec.shape[probsSpec.shape.length - 1];
const raw = (name) => {
  const bytes = fs.readFileSync(path.join(dir, name));
  return new Uint8Array(name.endsWith(".gz") ? zlib.gunzipSync(bytes) : bytes);
};
const agreement = (a, b) => {
  if (a.length !== b.length) return 0;
  let same = 0;
  for (let k = 0; k < a.length; k++) same += a[k] === b[k] ? 1 : 0;
  return same / a.length;
};
const relDiff = (got, want) => Math.abs(got - want) / Math.max(Math.abs(want), 1e-12);

let failed = 0;
for (const c of manifest.cases) {
  const { height: h, width: w } = c;
  const { input, box } = letterbox(raw(c.files.image), h, w, manifest.size);
  const lb = c.letterbox;
  const boxOk = box.padX === lb.pad_x && box.padY === lb.pad_y && box.newW === lb.new_w && box.newH === lb.new_h;
  const letterboxAgreement = agreement(input, raw(c.files.input));
  const classMap = unletterbox(raw(c.files.class_map), manifest.size, box, h, w);
  const classMapAgreement = agreement(classMap, raw(c.files.class_map_original));
  const want = c.measurements;
  const m = measure(raw(c.files.class_map_original), h, w, manifest.classes, null);
  const row = { name: c.name, box_ok: boxOk, letterbox_agreement: letterboxAgreement,
                class_map_agreement: classMapAgreement, hc_px: m ? m.hc : null, hc_px_python: want.hc_px };
  let ok = boxOk && letterboxAgreement === 1 && classMapAgreement === 1;
  if (want.hc_px == null || m == null) {
    ok = ok && want.hc_px == null && m == null;
  } else {
    const diffs = { hc: relDiff(m.hc, want.hc_px), bpd: relDiff(m.bpd, want.bpd_px) };
    if (want.ofd_px != null) diffs.ofd = relDiff(m.ofd, want.ofd_px);
    if (want.cx_px != null) diffs.centre = Math.hypot(m.ellipse.cx - want.cx_px, m.ellipse.cy - want.cy_px) / want.bpd_px;
    row.rel_diff = diffs;
    ok = ok && Object.values(diffs).every((v) => v <= rtol);
  }
  const wantConf = c.confidence;
  if (wantConf) {
    const bytes = raw(c.files.probs);
    const tensor = probsSpec.dtype === "float32"
      ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4) : bytes;
    const probs = unletterboxProbs(dequantize(tensor, probsSpec.quantization), manifest.size, channels, box, h, w);
    const conf = headConfidence(probs, raw(c.files.class_map_original), h, w, manifest.classes,
                                bandWidthPx(h, w, manifest.size));
    const diffs = [Math.abs(conf.score - wantConf.score)];
    for (const part of ["components", "raw", "structures"]) {
      const names = new Set([...Object.keys(wantConf[part]), ...Object.keys(conf[part])]);
      for (const k of names) diffs.push(Math.abs(conf[part][k] - wantConf[part][k]));  // a missing one is NaN
    }
    const verdicts = wantConf.verdicts.map(([t, v]) => verdict(conf.score, t) === v);
    // Per-structure flags at thresholds around each margin: Python's low_structures, in class order.
    for (const [thresholds, low] of wantConf.structure_flags || []) {
      verdicts.push(JSON.stringify(lowStructures(conf.structures, thresholds)) === JSON.stringify(low));
    }
    if (!wantConf.structure_flags) verdicts.push(false);  // regenerate golden.json (lightseg export --golden)
    Object.assign(row, { confidence: conf.score, confidence_python: wantConf.score,
                         confidence_diff: Math.abs(conf.score - wantConf.score),
                         confidence_max_diff: Math.max(...diffs), verdicts_ok: verdicts.every(Boolean) });
    ok = ok && diffs.every((d) => d <= ctol) && row.verdicts_ok;
  } else {
    ok = false;
    row.confidence = "golden.json has no confidence for this case: regenerate it with lightseg export --golden";
  }
  row.ok = ok;
  failed += ok ? 0 : 1;
  console.log(JSON.stringify(row));
}
const table = (manifest.confidence || {}).verdict_table || [];
const tableFailed = table.filter(([score, t, v]) => verdict(score, t) !== v);
console.log(JSON.stringify({ cases: manifest.cases.length, failed, rtol, ctol, verdict_table: table.length,
                             verdict_table_failed: tableFailed }));
process.exit(failed || tableFailed.length || !table.length ? 1 : 0);
