package org.lightseg.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.util.zip.GZIPInputStream

/**
 * The app's pre- and post-processing against the golden vectors Python exported
 * (`lightseg export RUN --golden DIR`): the same files the browser test reads.
 * The folder is `src/test/resources/golden` unless the `golden.dir` system property says otherwise.
 */
@Suppress("UNCHECKED_CAST")
class GoldenTest {
    private val dir = File(System.getProperty("golden.dir") ?: "src/test/resources/golden")
    private val manifest = MiniJson(File(dir, "golden.json").readText()).parse() as Map<String, Any?>
    private val size = (manifest["size"] as Double).toInt()
    private val classes = manifest["classes"] as List<String>
    private val cases = manifest["cases"] as List<Map<String, Any?>>

    /** A golden raw file's bytes; `*.raw.gz` files are gunzipped (older sets hold plain `*.raw`). */
    private fun raw(case: Map<String, Any?>, key: String): ByteArray {
        val file = File(dir, (case["files"] as Map<String, String>).getValue(key))
        return if (file.name.endsWith(".gz")) GZIPInputStream(file.inputStream()).use { it.readBytes() } else file.readBytes()
    }

    private fun dims(case: Map<String, Any?>) = Pair((case["height"] as Double).toInt(), (case["width"] as Double).toInt())

    @Test
    fun letterboxMatchesPythonBitForBit() {
        assertTrue("golden.json lists no cases", cases.isNotEmpty())
        for (case in cases) {
            val (h, w) = dims(case)
            val (boxed, box) = Letterbox.apply(raw(case, "image"), h, w, size)
            val lb = case["letterbox"] as Map<String, Double>
            assertEquals(Box(lb.getValue("pad_x").toInt(), lb.getValue("pad_y").toInt(), lb.getValue("new_w").toInt(),
                lb.getValue("new_h").toInt()), box)
            assertArrayEquals("letterbox of ${case["name"]}", raw(case, "input"), boxed)
        }
    }

    @Test
    fun undoingTheLetterboxMatchesPython() {
        for (case in cases) {
            val (h, w) = dims(case)
            val box = Letterbox.params(h, w, size)
            assertArrayEquals("class map of ${case["name"]}", raw(case, "class_map_original"),
                Letterbox.undo(raw(case, "class_map"), size, box, h, w))
        }
    }

    /**
     * The same ellipse as Python (same boundary pixels, same direct least-squares fit, float64):
     * HC, BPD, OFD and the centre within [RTOL] relative. Prints one `parity` line per case.
     */
    @Test
    fun ellipseAndHeadCircumferenceAreThoseOfPython() {
        var measured = 0
        for (case in cases) {
            val (h, w) = dims(case)
            val px = case["pixel_size_mm"] as Double?
            val want = case["measurements"] as Map<String, Double?>
            val got = Biometry.measure(raw(case, "class_map_original"), h, w, classes, px)
            if (want["hc_px"] == null) {
                assertNull("Python found no head in ${case["name"]}", got)
                continue
            }
            assertNotNull("no head found in ${case["name"]}", got)
            val e = got!!.ellipse
            val hcDiff = Math.abs(e.perimeter / want.getValue("hc_px")!! - 1)
            println("parity ${case["name"]} hc_px=${e.perimeter} python=${want["hc_px"]} rel_diff=$hcDiff")
            assertEquals("HC of ${case["name"]}", want.getValue("hc_px")!!, e.perimeter, RTOL * want.getValue("hc_px")!!)
            assertEquals("BPD of ${case["name"]}", want.getValue("bpd_px")!!, 2 * e.b, RTOL * want.getValue("bpd_px")!!)
            want["ofd_px"]?.let { assertEquals("OFD of ${case["name"]}", it, 2 * e.a, RTOL * it) }
            want["cx_px"]?.let { assertEquals("centre x of ${case["name"]}", it, e.cx, RTOL * w) }
            want["cy_px"]?.let { assertEquals("centre y of ${case["name"]}", it, e.cy, RTOL * h) }
            if (px != null) assertEquals("HC mm of ${case["name"]}", want.getValue("hc_mm")!!, got.hc, RTOL * want.getValue("hc_mm")!!)
            measured += 1
        }
        assertTrue("no golden case has a head to measure", measured > 0)
    }

    /** The golden case's probabilities as the app gets them: the raw tensor, dequantized per the card. */
    private fun probs(case: Map<String, Any?>): FloatArray {
        val card = MiniJson(File(dir, (manifest["model"] as String).replace(Regex("\\.tflite$"), ".json")).readText())
            .parse() as Map<String, Any?>
        val spec = (card["outputs"] as Map<String, Any?>)["probs"] as Map<String, Any?>
        val bytes = raw(case, "probs")
        if (spec["dtype"] == "float32") {
            val buf = java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
            return FloatArray(buf.remaining()) { buf.get(it) }
        }
        val q = spec["quantization"] as Map<String, Double>?
            ?: return FloatArray(bytes.size) { (bytes[it].toInt() and 0xFF).toFloat() }
        return Confidence.dequantize(bytes, q.getValue("scale").toFloat(), q.getValue("zero_point").toInt())
    }

    /**
     * Python's head confidence (`lightseg_tf.anatomy.confidence.head_confidence`) from the same class
     * map and probabilities: score, components, raw numbers and structure margins within [CONFIDENCE_ATOL]
     * (golden.py's CONFIDENCE_ATOL), Python's verdict at each threshold the case lists and the structures
     * it flags at each case's per-structure thresholds. Prints one
     * `confidence parity` line per case.
     */
    @Test
    fun headConfidenceIsThatOfPython() {
        var scored = 0
        for (case in cases) {
            val (h, w) = dims(case)
            val want = case["confidence"] as Map<String, Any?>? ?: throw AssertionError(
                "golden.json has no confidence for ${case["name"]}: regenerate it with lightseg export --golden")
            val box = Letterbox.params(h, w, size)
            val channels = classes.size
            val p = Confidence.unletterboxProbs(probs(case), size, channels, box, h, w)
            val band = Confidence.bandWidthPx(h, w, size)
            val got = Confidence.head(p, raw(case, "class_map_original"), h, w, classes, band)
            assertEquals("band of ${case["name"]}", want["band_px"] as Double, band, 1e-12)
            val wantScore = want["score"] as Double
            assertEquals("score of ${case["name"]}", wantScore, got.score, CONFIDENCE_ATOL)
            var maxDiff = 0.0
            val parts = listOf("components" to got.components, "raw" to got.raw, "structures" to got.structures)
            for ((part, mine) in parts) {
                val theirs = want[part] as Map<String, Double>
                assertEquals("$part names of ${case["name"]}", theirs.keys, mine.keys)
                for ((k, v) in theirs) {
                    assertEquals("$part $k of ${case["name"]}", v, mine.getValue(k), CONFIDENCE_ATOL)
                    maxDiff = maxOf(maxDiff, Math.abs(v - mine.getValue(k)))
                }
            }
            println("confidence parity ${case["name"]} score=${got.score} python=$wantScore " +
                "diff=${Math.abs(got.score - wantScore)} max_part_diff=$maxDiff")
            for (row in want["verdicts"] as List<List<Any?>>) {
                assertEquals("verdict of ${case["name"]} at threshold ${row[0]}", row[1],
                    Confidence.verdict(got.score, row[0] as Double?))
            }
            val flags = want["structure_flags"] as List<List<Any?>>? ?: throw AssertionError(
                "golden.json has no structure_flags for ${case["name"]}: regenerate it with lightseg export --golden")
            for (row in flags) {
                val thresholds = row[0] as Map<String, Double>
                assertEquals("structures flagged in ${case["name"]} at $thresholds", row[1],
                    Confidence.lowStructures(got.structures, thresholds))
            }
            if (got.components.isNotEmpty()) scored += 1
        }
        assertTrue("no golden case has a head to score", scored > 0)
    }

    /** golden.json's (score, threshold, verdict) rows: half-up on the shortest decimal form, as Python. */
    @Test
    fun verdictRoundsAsPython() {
        val table = (manifest["confidence"] as Map<String, Any?>)["verdict_table"] as List<List<Any?>>
        assertTrue("golden.json has no verdict table", table.isNotEmpty())
        for (row in table) {
            assertEquals("verdict of ${row[0]} at ${row[1]}", row[2],
                Confidence.verdict(row[0] as Double, row[1] as Double?))
        }
        assertEquals(0.3, Confidence.roundHalfUp(0.295, 2), 0.0)
        assertEquals(0.14, Confidence.roundHalfUp(0.1449999, 2), 0.0)
        assertEquals(-0.3, Confidence.roundHalfUp(-0.295, 2), 0.0)
        assertEquals(2.68, Confidence.roundHalfUp(2.675, 2), 0.0)
        // The line lightseg measure prints (lightseg_tf/evaluation/measure.py _confidence).
        assertEquals("confidence 0.30 (threshold 0.30)", Confidence.line(0.295, 0.3))
        assertEquals("confidence 0.01 (uncalibrated: no threshold known)", Confidence.line(0.0149, null))
        assertEquals("confidence 0.00 (threshold 0.05)", Confidence.line(0.0, 0.05))
    }

    @Test
    fun ellipseFitRecoversARasterisedEllipse() {
        val (h, w) = Pair(120, 160)
        val (a, b) = Pair(60.0, 35.0)
        val map = ByteArray(h * w) { p ->
            val x = p % w + 0.5 - 80.0
            val y = p / w + 0.5 - 60.0
            if ((x * x) / (a * a) + (y * y) / (b * b) <= 1.0) 1 else 0
        }
        val m = Biometry.measure(map, h, w, listOf("background", "head"), null)!!
        assertEquals(a, m.ellipse.a, 0.5)
        assertEquals(b, m.ellipse.b, 0.5)
        assertEquals(80.0, m.ellipse.cx, 0.2)
        assertEquals(Ellipse(0.0, 0.0, a, b).perimeter, m.hc, 0.005 * m.hc)
    }

    @Test
    fun overlayKeepsBackgroundAndBlendsClassColours() {
        val colors = (manifest["colors"] as List<List<Double>>).map { c -> IntArray(3) { c[it].toInt() } }
        val px = Overlay.blend(byteArrayOf(100, 100), byteArrayOf(0, 1), colors)
        assertEquals(0xFF646464.toInt(), px[0])
        val r = Math.round(100 * 0.55f + colors[1][0] * 0.45f)
        assertEquals(r, (px[1] shr 16) and 0xFF)
    }

    companion object {
        /** Same algorithm in float64 on both sides: only rounding may differ. */
        const val RTOL = 1e-9

        /** Same inputs; Python sums float32 margins, here float64: far below the 0.01 the score is shown at. */
        const val CONFIDENCE_ATOL = 1e-4
    }
}
