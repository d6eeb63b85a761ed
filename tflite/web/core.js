// The device-side pixel logic of the browser demo, the same contract as Python's
// lightseg_tf.data.letterbox.letterbox_uint8 / unletterbox_mask and lightseg_tf.anatomy.biometry, and
// as the Android app's core/*.kt. float32 arithmetic is emulated with Math.fround so the
// letterbox matches Python bit for bit; the ellipse is the same direct least-squares fit on the
// same boundary pixels as Python's fit_head_ellipse, so HC agrees to rounding; headConfidence is
// lightseg_tf.anatomy.confidence.head_confidence on the same class map and probabilities
// (`node check_golden.mjs DIR` checks all of it against the golden vectors).

const f = Math.fround;

// Python's round(): half to even.
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function letterboxParams(h, w, size) {
  const scale = Math.min(size / h, size / w);
  const newH = Math.max(1, Math.min(size, roundHalfEven(h * scale)));
  const newW = Math.max(1, Math.min(size, roundHalfEven(w * scale)));
  return { padX: Math.floor((size - newW) / 2), padY: Math.floor((size - newH) / 2), newW, newH };
}

// Bilinear sample positions at half-pixel centres, clamped to the edge (OpenCV INTER_LINEAR);
// the weights kept in float32 for the letterbox, in float64 for the probabilities (unchanged callers).
function axis(nOut, nIn, Frac = Float32Array) {
  const lo = new Int32Array(nOut), hi = new Int32Array(nOut), frac = new Frac(nOut);
  for (let i = 0; i < nOut; i++) {
    const src = Math.min(Math.max((i + 0.5) * (nIn / nOut) - 0.5, 0), nIn - 1);
    lo[i] = Math.floor(src);
    hi[i] = Math.min(lo[i] + 1, nIn - 1);
    frac[i] = src - lo[i];
  }
  return { lo, hi, frac };
}

/** uint8 gray (h x w) -> uint8 size x size letterbox, and the box. */
export function letterbox(gray, h, w, size) {
  const box = letterboxParams(h, w, size);
  const ys = axis(box.newH, h), xs = axis(box.newW, w);
  const out = new Uint8Array(size * size);
  for (let i = 0; i < box.newH; i++) {
    const wy = ys.frac[i], r0 = ys.lo[i] * w, r1 = ys.hi[i] * w;
    for (let j = 0; j < box.newW; j++) {
      const wx = xs.frac[j], x0 = xs.lo[j], x1 = xs.hi[j];
      const top = f(f(gray[r0 + x0] * f(1 - wx)) + f(gray[r0 + x1] * wx));
      const bottom = f(f(gray[r1 + x0] * f(1 - wx)) + f(gray[r1 + x1] * wx));
      const v = f(f(top * f(1 - wy)) + f(bottom * wy));
      out[(i + box.padY) * size + j + box.padX] = Math.min(255, Math.max(0, roundHalfEven(v)));
    }
  }
  return { input: out, box };
}

/** Crop the padding and resize a size x size class map back to h x w (nearest at pixel centres). */
export function unletterbox(classMap, size, box, h, w) {
  const out = new Uint8Array(h * w);
  for (let i = 0; i < h; i++) {
    const r = Math.min(Math.floor((i + 0.5) * (box.newH / h)), box.newH - 1);
    for (let j = 0; j < w; j++) {
      const c = Math.min(Math.floor((j + 0.5) * (box.newW / w)), box.newW - 1);
      out[i * w + j] = classMap[(r + box.padY) * size + c + box.padX];
    }
  }
  return out;
}

/** RGBA pixels: class colours blended (alpha 0.45) over the gray image; background keeps it. */
export function overlay(gray, classMap, colors, alpha = 0.45) {
  const out = new Uint8ClampedArray(gray.length * 4);
  for (let k = 0; k < gray.length; k++) {
    const g = gray[k], c = classMap[k];
    const col = c > 0 && c < colors.length ? colors[c] : null;
    for (let ch = 0; ch < 3; ch++) out[4 * k + ch] = col ? Math.round(g * (1 - alpha) + col[ch] * alpha) : g;
    out[4 * k + 3] = 255;
  }
  return out;
}

const HEAD = new Set(["brain", "head", "fetal head", "skull", "csp", "lv"]);

/** Ids of the head-like classes (Python's HEAD_CLASS_NAMES), ascending. */
function headIds(classes) {
  return classes.map((c, k) => (k > 0 && HEAD.has(c.toLowerCase()) ? k : -1)).filter((k) => k > 0);
}

/**
 * The head region of a 0/1 mask as Python's head_confidence and fit_head_ellipse see it: the
 * largest 8-connected component (``largestSize`` pixels; the first in raster order on a tie, as
 * numpy's argmax), ``filled`` (1 = the component with its holes, binary_fill_holes: every pixel
 * not reached from the image edge through 4-connected non-component pixels), and the centres of
 * its outer-boundary pixels ``pts`` (Python's boundary_points: filled pixels on the image edge or
 * with a 4-neighbour outside; each once, in raster order).
 */
function headRegion(mask, h, w) {
  const label = new Int32Array(h * w), stack = new Int32Array(h * w);
  let best = 0, bestSize = 0, next = 0;
  for (let s = 0; s < mask.length; s++) {
    if (!mask[s] || label[s]) continue;
    next++;
    let top = 0, size = 0;
    stack[top++] = s; label[s] = next;
    while (top > 0) {
      const p = stack[--top]; size++;
      const y = Math.floor(p / w), x = p % w;
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const yy = y + dy, xx = x + dx;
        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
        const q = yy * w + xx;
        if (mask[q] && !label[q]) { label[q] = next; stack[top++] = q; }
      }
    }
    if (size > bestSize) { bestSize = size; best = next; }
  }
  const region = (p) => best !== 0 && label[p] === best;
  const outside = new Uint8Array(h * w);
  let top = 0;
  const seed = (p) => { if (!region(p) && !outside[p]) { outside[p] = 1; stack[top++] = p; } };
  for (let x = 0; x < w; x++) { seed(x); seed((h - 1) * w + x); }
  for (let y = 0; y < h; y++) { seed(y * w); seed(y * w + w - 1); }
  while (top > 0) {
    const p = stack[--top], y = Math.floor(p / w), x = p % w;
    if (y > 0) seed(p - w); if (y < h - 1) seed(p + w); if (x > 0) seed(p - 1); if (x < w - 1) seed(p + 1);
  }
  // A hole pixel has no 4-neighbour outside (it would have been reached), so the boundary pixels
  // of the filled region are component pixels.
  const pts = [];
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const p = y * w + x;
    if (!region(p)) continue;
    if (y === 0 || y === h - 1 || x === 0 || x === w - 1 || outside[p - w] || outside[p + w] || outside[p - 1] || outside[p + 1]) {
      pts.push([x + 0.5, y + 0.5]);
    }
  }
  const filled = new Uint8Array(h * w);
  if (best !== 0) for (let p = 0; p < filled.length; p++) filled[p] = outside[p] ? 0 : 1;
  return { largestSize: bestSize, filled, pts };
}

const mul = (a, b) => a.map((r, i) => b[0].map((_, j) => a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j]));
const det = (a) => a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
  + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
function inv(a) {
  const d = det(a);
  if (Math.abs(d) < 1e-300) return null;
  const out = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
    const r = [0, 1, 2].filter((k) => k !== j), c = [0, 1, 2].filter((k) => k !== i);
    out[i][j] = ((i + j) % 2 ? -1 : 1) * (a[r[0]][c[0]] * a[r[1]][c[1]] - a[r[0]][c[1]] * a[r[1]][c[0]]) / d;
  }
  return out;
}
const cross = (u, v) => [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]];
const norm = (v) => Math.hypot(v[0], v[1], v[2]);

function cubicRoots(b, c, d) {
  const q = (3 * c - b * b) / 9, r = (9 * b * c - 27 * d - 2 * b * b * b) / 54, disc = q * q * q + r * r;
  if (disc > 0) return [Math.cbrt(r + Math.sqrt(disc)) + Math.cbrt(r - Math.sqrt(disc)) - b / 3];
  const theta = Math.acos(Math.min(1, Math.max(-1, r / Math.sqrt(-q * q * q)))), m = 2 * Math.sqrt(-q);
  return [0, 2 * Math.PI, 4 * Math.PI].map((t) => m * Math.cos((theta + t) / 3) - b / 3);
}

/**
 * Direct least-squares ellipse (Fitzgibbon, Pilu & Fisher 1999, in the stable form of Halir &
 * Flusser 1998; Python's fit_ellipse_direct, OpenCV's fitEllipseDirect) through ``pts``, as
 * fitted: centre, semi-axes a >= b, and ``rho2(x, y)``, the conic's quadratic form about the
 * centre scaled to 1 on the ellipse, so ``sqrt(rho2)`` is Python's ``rho = sqrt((u/a)^2 +
 * (v/b)^2)`` in the ellipse's frame (the residual needs no angle). null when degenerate.
 */
export function fitEllipseDirect(pts) {
  if (pts.length < 5) return null;
  let mx = 0, my = 0, ss = 0;
  for (const [x, y] of pts) { mx += x; my += y; }
  mx /= pts.length; my /= pts.length;
  for (const [x, y] of pts) ss += (x - mx) ** 2 + (y - my) ** 2;
  const s = Math.sqrt(ss / pts.length);
  if (s === 0) return null;
  const z = () => [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  const s1 = z(), s2 = z(), s3 = z();
  for (const [px, py] of pts) {
    const x = (px - mx) / s, y = (py - my) / s, d1 = [x * x, x * y, y * y], d2 = [x, y, 1];
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
      s1[i][j] += d1[i] * d1[j]; s2[i][j] += d1[i] * d2[j]; s3[i][j] += d2[i] * d2[j];
    }
  }
  const s3i = inv(s3);
  if (!s3i) return null;
  const s2t = [0, 1, 2].map((i) => [0, 1, 2].map((j) => s2[j][i]));
  const t = mul(s3i, s2t).map((r) => r.map((v) => -v));
  const st = mul(s2, t), m = s1.map((r, i) => r.map((v, j) => v + st[i][j]));
  const mm = [m[2].map((v) => v / 2), m[1].map((v) => -v), m[0].map((v) => v / 2)];
  const tr = mm[0][0] + mm[1][1] + mm[2][2];
  const minors = mm[0][0] * mm[1][1] - mm[0][1] * mm[1][0] + mm[0][0] * mm[2][2] - mm[0][2] * mm[2][0]
    + mm[1][1] * mm[2][2] - mm[1][2] * mm[2][1];
  let a1 = null;
  for (const lambda of cubicRoots(-tr, minors, -det(mm))) {
    const q = mm.map((r, i) => r.map((v, j) => v - (i === j ? lambda : 0)));
    let v = cross(q[0], q[1]);
    for (const c of [cross(q[0], q[2]), cross(q[1], q[2])]) if (norm(c) > norm(v)) v = c;
    if (4 * v[0] * v[2] - v[1] * v[1] > 0) { a1 = v; break; }
  }
  if (!a1) return null;
  const a2 = t.map((r) => r[0] * a1[0] + r[1] * a1[1] + r[2] * a1[2]);
  const [A, B, C] = a1, [D, E, F] = a2, den = B * B - 4 * A * C;
  const num = 2 * (A * E * E + C * D * D - B * D * E + den * F), root = Math.hypot(A - C, B);
  const r1 = -Math.sqrt(num * (A + C + root)) / den, r2 = -Math.sqrt(num * (A + C - root)) / den;
  if (Number.isNaN(r1) || Number.isNaN(r2)) return null;
  const ux = (2 * C * D - B * E) / den, uy = (2 * A * E - B * D) / den;  // the centre, normalised
  // The conic about its centre is Q(d) + f0 (no linear term there): on the ellipse Q(d / s) = -f0.
  const k = -(A * ux * ux + B * ux * uy + C * uy * uy + D * ux + E * uy + F) * s * s;
  const cx = ux * s + mx, cy = uy * s + my;
  return { cx, cy, a: Math.max(r1, r2) * s, b: Math.min(r1, r2) * s,
           rho2: (x, y) => (A * (x - cx) ** 2 + B * (x - cx) * (y - cy) + C * (y - cy) ** 2) / k };
}

/**
 * The head ellipse (Python's fit_head_ellipse): fitEllipseDirect with the semi-axes grown by half
 * a pixel, because the boundary runs through pixel centres, half a pixel inside the edge.
 */
export function fitEllipse(pts) {
  const e = fitEllipseDirect(pts);
  return e && { cx: e.cx, cy: e.cy, a: e.a + 0.5, b: e.b + 0.5 };
}

/** Ramanujan's perimeter. */
export function perimeter(a, b) {
  const h = (a - b) ** 2 / (a + b) ** 2;
  return Math.PI * (a + b) * (1 + (3 * h) / (10 + Math.sqrt(4 - 3 * h)));
}

/** HC, BPD, OFD of the head in an h x w class map (mm with a pixel size, else px); null if none. */
export function measure(classMap, h, w, classes, pixelSizeMm) {
  const ids = new Set(headIds(classes));
  if (!ids.size) return null;
  const mask = new Uint8Array(h * w);
  for (let p = 0; p < mask.length; p++) mask[p] = ids.has(classMap[p]) ? 1 : 0;
  const e = fitEllipse(headRegion(mask, h, w).pts);
  if (!e) return null;
  const k = pixelSizeMm || 1;
  return { hc: perimeter(e.a, e.b) * k, bpd: 2 * e.b * k, ofd: 2 * e.a * k, units: pixelSizeMm ? "mm" : "px",
           ellipse: e };
}

/**
 * What the model was trained on, as one line for the page ("lightseg-phantom (lightseg)"), from
 * the card's training_domain; a card written before that field existed falls back to its
 * training_data (folder name and format); null when the card says nothing.
 */
export function trainingDomain(card) {
  const d = card && card.training_domain;
  const t = card && card.training_data;
  const name = (d && d.dataset) || (t && t.path ? t.path.split(/[\\/]/).filter(Boolean).pop() : null);
  const format = (d && d.format) || (t && t.format) || null;
  if (!name) return format;
  return format && format !== name ? `${name} (${format})` : name;
}

/** What the page shows for a card that does not say what its model was trained on. */
export const UNKNOWN_TRAINING_DOMAIN = "unknown (the card does not say)";

/**
 * The line shown beside a measurement: "model trained on: lightseg-phantom (lightseg)", or
 * "model trained on: unknown (the card does not say)". The Android core's TrainingDomain.line is
 * the same; both are held to android_demo/app/src/test/resources/training_domain_cases.json.
 */
export function trainingDomainLine(card) {
  return `model trained on: ${trainingDomain(card) || UNKNOWN_TRAINING_DOMAIN}`;
}

// ---- Confidence: lightseg_tf.anatomy.confidence (score "lightseg-confidence/1"), ported ----
// score = sqrt(margin_in * margin_band) * fit * border * fragments * area (see that module's
// docstring and the README's "Confidence"). The inputs are the ones Python's device path uses for
// a .tflite (TFLitePredictor.predict_device): the class map measured and the probabilities of the
// SAME inference on the uint8 letterbox, un-letterboxed bilinearly to the original size.

export const LOW_CONFIDENCE = "low confidence: do not use";
const FIT_RESIDUAL_HALF = 0.03, BORDER_SHARE_HALF = 0.1, AREA_LO = 0.01, AREA_HI = 0.6, AREA_ZERO = 0.95;
const BAND_MODEL_PX = 2;

/** The probs tensor (Uint8Array quantized per the card, or Float32Array) as float32 probabilities. */
export function dequantize(raw, quantization) {
  if (!quantization) return Float32Array.from(raw);
  const scale = f(quantization.scale), zero = quantization.zero_point;
  const out = new Float32Array(raw.length);
  for (let k = 0; k < raw.length; k++) out[k] = (raw[k] - zero) * scale;  // float32, as numpy
  return out;
}

/**
 * Crop the padding off size x size x channels probabilities and resize them bilinearly to h x w
 * (Python's unletterbox_probs, OpenCV INTER_LINEAR without antialiasing); float32 out, float64
 * weights (OpenCV's float32 weights differ by ~1e-7, far below what the score shows).
 */
export function unletterboxProbs(probs, size, channels, box, h, w) {
  const ys = axis(h, box.newH, Float64Array), xs = axis(w, box.newW, Float64Array);
  const out = new Float32Array(h * w * channels);
  for (let i = 0; i < h; i++) {
    const wy = ys.frac[i], r0 = (ys.lo[i] + box.padY) * size, r1 = (ys.hi[i] + box.padY) * size;
    for (let j = 0; j < w; j++) {
      const wx = xs.frac[j], c0 = xs.lo[j] + box.padX, c1 = xs.hi[j] + box.padX;
      const p00 = (r0 + c0) * channels, p01 = (r0 + c1) * channels;
      const p10 = (r1 + c0) * channels, p11 = (r1 + c1) * channels;
      for (let c = 0; c < channels; c++) {
        const top = probs[p00 + c] * (1 - wx) + probs[p01 + c] * wx;
        const bottom = probs[p10 + c] * (1 - wx) + probs[p11 + c] * wx;
        out[(i * w + j) * channels + c] = top * (1 - wy) + bottom * wy;
      }
    }
  }
  return out;
}

/** The boundary band's half-width in original pixels: two model pixels, 2 max(H, W) / S (Python's band_width_px). */
export function bandWidthPx(h, w, size) {
  return (BAND_MODEL_PX * Math.max(h, w)) / size;
}

/**
 * Python's round_half_up: to ``decimals`` places, halves away from zero, on the SHORTEST decimal
 * form of x (its repr; toExponential() without digits is that form), not on its binary value:
 * 0.295 -> 0.3 where Math.round(0.295 * 100) / 100 gives 0.29.
 */
export function roundHalfUp(x, decimals) {
  if (x == null || !Number.isFinite(x)) return x;
  const [mantissa, e] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");  // x = 0.d1d2d3... * 10^(exp + 1)
  const keep = Number(e) + decimals + 1;  // digits at or above 10^-decimals
  if (keep < 0) return 0;
  let kept = keep > 0 ? BigInt(digits.slice(0, keep).padEnd(keep, "0")) : 0n;
  if (keep < digits.length && Number(digits[keep]) >= 5) kept += 1n;
  return (x < 0 ? -1 : 1) * (Number(kept) / 10 ** decimals);
}

/**
 * "low" (score < threshold: "low confidence: do not use"), "ok", or "uncalibrated" when the card
 * has no threshold; both compared at the reported precision, 0.01 (Python's verdict).
 */
export function verdict(score, threshold) {
  if (threshold == null) return "uncalibrated";
  return roundHalfUp(score, 2) < roundHalfUp(threshold, 2) ? "low" : "ok";
}

/** "low confidence (<structure>): do not use", Python's structure_flag. */
export function structureFlag(name) {
  return `low confidence (${name}): do not use`;
}

/**
 * The drawn structures whose margin is below their calibrated threshold, in the margins' (class)
 * order; a structure without a threshold is never flagged (Python's low_structures).
 */
export function lowStructures(margins, thresholds) {
  return Object.keys(margins).filter((name) => verdict(margins[name], (thresholds || {})[name] ?? null) === "low");
}

/** The card's per-structure thresholds (card.confidence.structures: {class: threshold}), {} when none. */
export function cardStructureThresholds(card) {
  const s = (card && card.confidence && card.confidence.structures) || {};
  return Object.fromEntries(Object.entries(s).filter(([, t]) => typeof t === "number" && Number.isFinite(t)));
}

const falloff = (x, half) => 1 / (1 + (x / half) ** 2);
const clip01 = (v) => (Number.isNaN(v) ? 0 : Math.min(1, Math.max(0, v)));  // Python's _clip01: NaN -> 0

function areaTerm(fraction) {
  if (fraction < AREA_LO) return clip01((fraction - AREA_LO / 2) / (AREA_LO / 2));
  if (fraction > AREA_HI) return clip01((AREA_ZERO - fraction) / (AREA_ZERO - AREA_HI));
  return 1;
}

/**
 * 1 where a pixel lies within ``bandPx`` (Euclidean, pixel centres) of a pixel on the other side of
 * ``filled``: Python's ``(head & edt(head) <= band) | (~head & edt(~head) <= band)``, exactly. The
 * nearest pixel of the other side always has an 8-neighbour on this side (else one step towards
 * this pixel would be nearer), so stamping a disc around every such frontier pixel suffices.
 */
function boundaryBand(filled, h, w, bandPx) {
  const r = Math.floor(bandPx), offsets = [];
  for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) {
    if ((dy || dx) && Math.sqrt(dy * dy + dx * dx) <= bandPx) offsets.push([dy, dx]);
  }
  const band = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const side = filled[y * w + x];
    let frontier = false;
    for (let dy = -1; dy <= 1 && !frontier; dy++) for (let dx = -1; dx <= 1; dx++) {
      const yy = y + dy, xx = x + dx;
      if (yy >= 0 && yy < h && xx >= 0 && xx < w && filled[yy * w + xx] !== side) { frontier = true; break; }
    }
    if (!frontier) continue;
    for (const [dy, dx] of offsets) {
      const yy = y + dy, xx = x + dx;
      if (yy >= 0 && yy < h && xx >= 0 && xx < w && filled[yy * w + xx] !== side) band[yy * w + xx] = 1;
    }
  }
  return band;
}

/** {class name: mean top1 - top2 probability margin over its pixels} per foreground class drawn. */
function structureMargins(probs, classMap, classes) {
  const n = classes.length, sum = new Float64Array(n), count = new Float64Array(n);
  for (let p = 0; p < classMap.length; p++) {
    const k = classMap[p];
    if (k === 0 || k >= n) continue;
    let top1 = -Infinity, top2 = -Infinity;
    for (let c = 0; c < n; c++) {
      const v = probs[p * n + c];
      if (v > top1) { top2 = top1; top1 = v; } else if (v > top2) top2 = v;
    }
    sum[k] += f(top1 - top2);
    count[k] += 1;
  }
  const out = {};
  for (let k = 1; k < n; k++) if (count[k]) out[classes[k]] = sum[k] / count[k];
  return out;
}

/**
 * The confidence of the head measured on ``classMap`` (h x w), Python's head_confidence: probs
 * h x w x C (unletterboxProbs), class names, bandPx (bandWidthPx). Returns {score, components,
 * raw, structures}; score 0 when there is no head.
 */
export function headConfidence(probs, classMap, h, w, classes, bandPx) {
  const ids = headIds(classes), n = classes.length;
  const out = { score: 0, components: {}, raw: {}, structures: structureMargins(probs, classMap, classes) };
  const any = new Uint8Array(h * w);
  let anyCount = 0;
  for (let p = 0; p < any.length; p++) if (ids.includes(classMap[p])) { any[p] = 1; anyCount++; }
  if (!anyCount) return out;
  const { largestSize, filled, pts } = headRegion(any, h, w);
  const e = fitEllipseDirect(pts);  // before the half-pixel growth: the points' own fit
  if (!e) return out;
  const band = boundaryBand(filled, h, w, bandPx);
  let sumIn = 0, nIn = 0, sumHead = 0, nHead = 0, sumBand = 0, nBand = 0;
  for (let p = 0; p < any.length; p++) {
    let head = 0;
    for (const k of ids) head = f(head + probs[p * n + k]);
    const margin = Math.abs(f(f(2 * head) - 1));  // float32, as numpy
    if (band[p]) { sumBand += margin; nBand++; }
    if (filled[p]) {
      sumHead += margin; nHead++;
      if (!band[p]) { sumIn += margin; nIn++; }
    }
  }
  let residual = 0, onEdge = 0;
  for (const [x, y] of pts) {
    const rho = Math.sqrt(e.rho2(x, y));
    residual += Math.hypot(x - e.cx, y - e.cy) * Math.abs(1 - 1 / Math.max(rho, 1e-12));
    if (x < 1 || y < 1 || x > w - 1 || y > h - 1) onEdge++;
  }
  const raw = { residual: residual / pts.length / Math.sqrt(e.a * e.b), edge_share: onEdge / pts.length,
                area_fraction: nHead / (h * w), head_share: largestSize / anyCount };
  const components = {
    margin_in: nIn ? sumIn / nIn : sumHead / nHead, margin_band: sumBand / nBand,  // NaN without a band, as numpy
    fit: falloff(raw.residual, FIT_RESIDUAL_HALF), border: falloff(raw.edge_share, BORDER_SHARE_HALF),
    fragments: raw.head_share, area: areaTerm(raw.area_fraction),
  };
  const score = Math.sqrt(components.margin_in * components.margin_band) * components.fit * components.border
    * components.fragments * components.area;
  return { ...out, score: clip01(score), components, raw };
}

/** The card's calibrated "do not use" threshold (card.confidence.threshold, from lightseg calibrate), or null. */
export function cardThreshold(card) {
  const t = card && card.confidence && card.confidence.threshold;
  return typeof t === "number" && Number.isFinite(t) ? t : null;
}

/** The line lightseg measure prints: "confidence 0.58 (threshold 0.30)", or "(uncalibrated: ...)". */
export function confidenceLine(score, threshold) {
  const shown = `confidence ${roundHalfUp(score, 2).toFixed(2)}`;
  return threshold == null ? `${shown} (uncalibrated: no threshold known)`
    : `${shown} (threshold ${roundHalfUp(threshold, 2).toFixed(2)})`;
}
