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
    }
}
