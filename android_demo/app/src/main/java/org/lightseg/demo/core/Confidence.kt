package org.lightseg.demo.core

import java.math.BigDecimal
import java.math.MathContext
import java.math.RoundingMode

/**
 * How far a head measurement can be trusted: Python's `lightseg_tf.anatomy.confidence` (score
 * "lightseg-confidence/1"), ported so the app can say "low confidence: do not use" as
 * `lightseg measure` does (GoldenTest checks it against Python's numbers on the golden vectors):
 *
 *     score = sqrt(margin_in * margin_band) * fit * border * fragments * area
 *
 * `margin_in` / `margin_band`: mean head-vs-rest margin |2 p_head - 1| inside the measured head
 * (deeper than the band) and in the band of [bandWidthPx] either side of its outline; `fit`,
 * `border`: falloffs of the outline's mean radial residual to the fitted ellipse (over its mean
 * radius) and of its share on the image edge; `fragments`: the share of head pixels in the
 * measured component; `area`: 1 while the head covers 1-60 % of the image. The inputs are those of
 * Python's device path for a .tflite (`TFLitePredictor.predict_device`): the class map measured
 * and the probabilities of the SAME inference, un-letterboxed bilinearly ([unletterboxProbs]).
 */
object Confidence {
    const val LOW_CONFIDENCE = "low confidence: do not use"
    private const val FIT_RESIDUAL_HALF = 0.03
    private const val BORDER_SHARE_HALF = 0.1
    private const val AREA_LO = 0.01
    private const val AREA_HI = 0.6
    private const val AREA_ZERO = 0.95
    private const val BAND_MODEL_PX = 2.0

    /** The score, its six [components], the [raw] numbers behind them, and per-structure margins. */
    data class Result(val score: Double, val components: Map<String, Double>, val raw: Map<String, Double>,
                      val structures: Map<String, Double>)

    /** A uint8 probs tensor as float32 probabilities, `(q - zeroPoint) * scale` in float32 as numpy. */
    fun dequantize(raw: ByteArray, scale: Float, zeroPoint: Int): FloatArray =
        FloatArray(raw.size) { ((raw[it].toInt() and 0xFF) - zeroPoint).toFloat() * scale }

    /**
     * Crop the padding off [size] x [size] x [channels] probabilities and resize them bilinearly to
     * [h] x [w] (Python's `unletterbox_probs`, OpenCV INTER_LINEAR at half-pixel centres, clamped
     * at the edges); float64 weights (OpenCV's float32 ones differ by ~1e-7).
     */
    fun unletterboxProbs(probs: FloatArray, size: Int, channels: Int, box: Box, h: Int, w: Int): FloatArray {
        fun axis(nOut: Int, nIn: Int): Triple<IntArray, IntArray, DoubleArray> {
            val lo = IntArray(nOut)
            val hi = IntArray(nOut)
            val frac = DoubleArray(nOut)
            for (i in 0 until nOut) {
                val src = ((i + 0.5) * (nIn.toDouble() / nOut) - 0.5).coerceIn(0.0, (nIn - 1).toDouble())
                lo[i] = Math.floor(src).toInt()
                hi[i] = minOf(lo[i] + 1, nIn - 1)
                frac[i] = src - lo[i]
            }
            return Triple(lo, hi, frac)
        }
        val (y0, y1, fy) = axis(h, box.newH)
        val (x0, x1, fx) = axis(w, box.newW)
        val out = FloatArray(h * w * channels)
        for (i in 0 until h) {
            val r0 = (y0[i] + box.padY) * size
            val r1 = (y1[i] + box.padY) * size
            val wy = fy[i]
            for (j in 0 until w) {
                val c0 = x0[j] + box.padX
                val c1 = x1[j] + box.padX
                val wx = fx[j]
                for (c in 0 until channels) {
                    val top = probs[(r0 + c0) * channels + c] * (1 - wx) + probs[(r0 + c1) * channels + c] * wx
                    val bottom = probs[(r1 + c0) * channels + c] * (1 - wx) + probs[(r1 + c1) * channels + c] * wx
                    out[(i * w + j) * channels + c] = (top * (1 - wy) + bottom * wy).toFloat()
                }
            }
        }
        return out
    }

    /** The band's half-width in original pixels: two model pixels, `2 max(H, W) / S` (Python's band_width_px). */
    fun bandWidthPx(h: Int, w: Int, size: Int): Double = BAND_MODEL_PX * maxOf(h, w) / size

    /**
     * Python's `round_half_up`: halves away from zero on the SHORTEST decimal form of [x] (its repr),
     * not on its binary value: 0.295 -> 0.3 (the double is 0.29499999...). The shortest form is found
     * here from the exact value (the fewest significant digits that read back as [x], the nearest
     * such), not from `Double.toString`, which is not always shortest before JDK 19.
     */
    fun roundHalfUp(x: Double, decimals: Int): Double {
        if (x.isNaN() || x.isInfinite()) return x
        return shortest(x).setScale(decimals, RoundingMode.HALF_UP).toDouble()
    }

    private fun shortest(x: Double): BigDecimal {
        if (x == 0.0) return BigDecimal.ZERO
        val exact = BigDecimal(x)
        for (digits in 1..17) {
            val near = exact.round(MathContext(digits, RoundingMode.HALF_EVEN))
            val unit = BigDecimal.ONE.movePointLeft(near.scale())
            // The nearest p-digit decimal, else a neighbour (next to a power of two the interval that
            // reads back as x is lopsided); the nearest of those that read back.
            var found: BigDecimal? = null
            for (candidate in listOf(near, near.add(unit), near.subtract(unit))) {
                val closer = found == null || candidate.subtract(exact).abs() < found.subtract(exact).abs()
                if (candidate.toDouble() == x && closer) found = candidate
            }
            if (found != null) return found
        }
        return exact
    }

    /**
     * "low" (score < threshold: [LOW_CONFIDENCE]), "ok", or "uncalibrated" when the model card has no
     * threshold; both compared at the reported precision, 0.01 (Python's `verdict`).
     */
    fun verdict(score: Double, threshold: Double?): String {
        if (threshold == null) return "uncalibrated"
        return if (roundHalfUp(score, 2) < roundHalfUp(threshold, 2)) "low" else "ok"
    }

    /** "low confidence (<structure>): do not use", Python's `structure_flag`. */
    fun structureFlag(name: String): String = "low confidence ($name): do not use"

    /**
     * The drawn structures whose margin is below their calibrated threshold, in the margins' (class)
     * order; a structure without a threshold is never flagged (Python's `low_structures`).
     */
    fun lowStructures(margins: Map<String, Double>, thresholds: Map<String, Double>): List<String> =
        margins.filter { (name, m) -> verdict(m, thresholds[name]) == "low" }.keys.toList()

    /** The line `lightseg measure` prints: "confidence 0.58 (threshold 0.30)", or "(uncalibrated: ...)". */
    fun line(score: Double, threshold: Double?): String {
        val shown = "confidence ${twoDecimals(roundHalfUp(score, 2))}"
        return if (threshold == null) "$shown (uncalibrated: no threshold known)"
        else "$shown (threshold ${twoDecimals(roundHalfUp(threshold, 2))})"
    }

    /** A value already rounded to 0.01, with two decimals and a point whatever the locale. */
    private fun twoDecimals(x: Double): String =
        BigDecimal(x.toString()).setScale(2, RoundingMode.HALF_UP).toPlainString()

    private fun falloff(x: Double, half: Double) = 1.0 / (1.0 + (x / half) * (x / half))

    /** Python's `_clip01`: NaN (a head with no band around it) is 0. */
    private fun clip01(v: Double) = if (v.isNaN()) 0.0 else minOf(1.0, maxOf(0.0, v))

    private fun areaTerm(fraction: Double): Double = when {
        fraction < AREA_LO -> clip01((fraction - AREA_LO / 2) / (AREA_LO / 2))
        fraction > AREA_HI -> clip01((AREA_ZERO - fraction) / (AREA_ZERO - AREA_HI))
        else -> 1.0
    }

    /**
     * True where a pixel lies within [bandPx] (Euclidean, pixel centres) of a pixel on the other side
     * of [filled]: Python's `(head & edt(head) <= band) | (~head & edt(~head) <= band)`, exactly. The
     * nearest pixel of the other side always has an 8-neighbour on this side (else one step towards
     * this pixel would be nearer), so a disc stamped around every such frontier pixel suffices.
     */
    private fun boundaryBand(filled: BooleanArray, h: Int, w: Int, bandPx: Double): BooleanArray {
        val r = Math.floor(bandPx).toInt()
        val offsets = ArrayList<IntArray>()
        for (dy in -r..r) for (dx in -r..r) {
            val inside = Math.sqrt((dy * dy + dx * dx).toDouble()) <= bandPx
            if ((dy != 0 || dx != 0) && inside) offsets.add(intArrayOf(dy, dx))
        }
        val band = BooleanArray(h * w)
        for (y in 0 until h) for (x in 0 until w) {
            val side = filled[y * w + x]
            var frontier = false
            loop@ for (dy in -1..1) for (dx in -1..1) {
                val yy = y + dy
                val xx = x + dx
                if (yy in 0 until h && xx in 0 until w && filled[yy * w + xx] != side) {
                    frontier = true
                    break@loop
                }
            }
            if (!frontier) continue
            for (o in offsets) {
                val yy = y + o[0]
                val xx = x + o[1]
                if (yy in 0 until h && xx in 0 until w && filled[yy * w + xx] != side) band[yy * w + xx] = true
            }
        }
        return band
    }

    /** {class name: mean top1 - top2 probability margin over its pixels}, per foreground class drawn. */
    fun structureMargins(probs: FloatArray, classMap: ByteArray, classes: List<String>): Map<String, Double> {
        val n = classes.size
        val sum = DoubleArray(n)
        val count = IntArray(n)
        for (p in classMap.indices) {
            val k = classMap[p].toInt() and 0xFF
            if (k == 0 || k >= n) continue
            var top1 = Float.NEGATIVE_INFINITY
            var top2 = Float.NEGATIVE_INFINITY
            for (c in 0 until n) {
                val v = probs[p * n + c]
                if (v > top1) { top2 = top1; top1 = v } else if (v > top2) top2 = v
            }
            sum[k] += (top1 - top2).toDouble()
            count[k] += 1
        }
        val out = LinkedHashMap<String, Double>()
        for (k in 1 until n) if (count[k] > 0) out[classes[k]] = sum[k] / count[k]
        return out
    }

    /**
     * The confidence of the head measured on [classMap] ([h] x [w]), Python's `head_confidence`:
     * [probs] [h] x [w] x C ([unletterboxProbs]), the class names, [bandPx] ([bandWidthPx]).
     * Score 0 (no components) when there is no head.
     */
    fun head(probs: FloatArray, classMap: ByteArray, h: Int, w: Int, classes: List<String>, bandPx: Double): Result {
        val ids = Biometry.headIds(classes).toIntArray()
        val n = classes.size
        val structures = structureMargins(probs, classMap, classes)
        val none = Result(0.0, emptyMap(), emptyMap(), structures)
        val any = BooleanArray(h * w) { (classMap[it].toInt() and 0xFF) in ids }
        val anyCount = any.count { it }
        if (anyCount == 0) return none
        val region = Biometry.headRegion(any, h, w)
        val fit = Biometry.fitEllipseDirect(region.points) ?: return none  // before the half-pixel growth
        val band = boundaryBand(region.filled, h, w, bandPx)
        var sumIn = 0.0
        var nIn = 0
        var sumHead = 0.0
        var nHead = 0
        var sumBand = 0.0
        var nBand = 0
        for (p in 0 until h * w) {
            var pHead = 0f
            for (k in ids) pHead += probs[p * n + k]
            val margin = Math.abs(2f * pHead - 1f).toDouble()  // float32, as numpy
            if (band[p]) { sumBand += margin; nBand++ }
            if (region.filled[p]) {
                sumHead += margin
                nHead++
                if (!band[p]) { sumIn += margin; nIn++ }
            }
        }
        val e = fit.ellipse
        var residual = 0.0
        var onEdge = 0
        for (pt in region.points) {
            val rho = Math.sqrt(fit.rho2(pt[0], pt[1]))
            residual += Math.hypot(pt[0] - e.cx, pt[1] - e.cy) * Math.abs(1 - 1 / maxOf(rho, 1e-12))
            if (pt[0] < 1 || pt[1] < 1 || pt[0] > w - 1 || pt[1] > h - 1) onEdge++
        }
        val raw = linkedMapOf(
            "residual" to residual / region.points.size / Math.sqrt(e.a * e.b),
            "edge_share" to onEdge.toDouble() / region.points.size,
            "area_fraction" to nHead.toDouble() / (h * w),
            "head_share" to region.largestSize.toDouble() / anyCount)
        val components = linkedMapOf(
            "margin_in" to if (nIn > 0) sumIn / nIn else sumHead / nHead,
            "margin_band" to sumBand / nBand,  // NaN without a band, as numpy's mean of nothing
            "fit" to falloff(raw.getValue("residual"), FIT_RESIDUAL_HALF),
            "border" to falloff(raw.getValue("edge_share"), BORDER_SHARE_HALF),
            "fragments" to raw.getValue("head_share"),
            "area" to areaTerm(raw.getValue("area_fraction")))
        val c = components
        val score = Math.sqrt(c.getValue("margin_in") * c.getValue("margin_band")) * c.getValue("fit") *
            c.getValue("border") * c.getValue("fragments") * c.getValue("area")
        return Result(clip01(score), components, raw, structures)
    }
}
