// The browser demo's pixel logic (core.js) against golden vectors written by Python
// (`lightseg export RUN --golden DIR`), in node, without a browser:
//   node check_golden.mjs DIR [--rtol 1e-9]
// Per case: the letterbox must match Python bit for bit, the un-letterboxed class map pixel for
// pixel, and HC / BPD / OFD / centre (pixels) within --rtol of Python's. Prints one JSON line per
// case and a summary line; exits 1 when a case fails, 2 on bad arguments.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { letterbox, measure, unletterbox } from "./core.js";

const args = process.argv.slice(2);
const dir = args[0];
const rtolAt = args.indexOf("--rtol");
const rtol = rtolAt > 0 ? Number(args[rtolAt + 1]) : 1e-9;
if (!dir || !Number.isFinite(rtol)) {
  console.error("usage: node check_golden.mjs GOLDEN_DIR [--rtol 1e-9]");
  process.exit(2);
}

const manifest = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8"));
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
  row.ok = ok;
  failed += ok ? 0 : 1;
  console.log(JSON.stringify(row));
}
console.log(JSON.stringify({ cases: manifest.cases.length, failed, rtol }));
process.exit(failed ? 1 : 0);
