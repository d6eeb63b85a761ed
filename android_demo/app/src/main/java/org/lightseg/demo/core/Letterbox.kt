package org.lightseg.demo.core

/**
 * The model card's letterbox, bit for bit as Python's `lightseg_tf.data.letterbox.letterbox_uint8`:
 * scale = min(S/H, S/W); resize to (round(W*scale), round(H*scale)) bilinearly at half-pixel
 * centres (OpenCV INTER_LINEAR grid, no antialiasing) in float32; paste centred on a black S x S.
 * Plain Kotlin (no Android imports) so it is unit-tested on the JVM against the golden vectors.
 */
data class Box(val padX: Int, val padY: Int, val newW: Int, val newH: Int)

object Letterbox {
    /** Where an [h] x [w] image lands in an [size] x [size] letterbox. */
    fun params(h: Int, w: Int, size: Int): Box {
        val scale = minOf(size.toDouble() / h, size.toDouble() / w)
        // Math.rint rounds half to even, like Python's round().
        val newH = maxOf(1, minOf(size, Math.rint(h * scale).toInt()))
        val newW = maxOf(1, minOf(size, Math.rint(w * scale).toInt()))
        return Box((size - newW) / 2, (size - newH) / 2, newW, newH)
    }

    private class Axis(val lo: IntArray, val hi: IntArray, val frac: FloatArray)

    private fun axis(nOut: Int, nIn: Int): Axis {
        val lo = IntArray(nOut)
        val hi = IntArray(nOut)
        val frac = FloatArray(nOut)
        val step = nIn.toDouble() / nOut
        for (i in 0 until nOut) {
            val src = ((i + 0.5) * step - 0.5).coerceIn(0.0, (nIn - 1).toDouble())
            val l = Math.floor(src).toInt()
            lo[i] = l
            hi[i] = minOf(l + 1, nIn - 1)
            frac[i] = (src - l).toFloat()
        }
        return Axis(lo, hi, frac)
    }

    /** Letterbox a uint8 gray image ([gray] row-major, [h] x [w]) into [size] x [size] uint8. */
    fun apply(gray: ByteArray, h: Int, w: Int, size: Int): Pair<ByteArray, Box> {
        require(gray.size == h * w) { "image has ${gray.size} bytes, expected $h x $w" }
        val box = params(h, w, size)
        val ys = axis(box.newH, h)
        val xs = axis(box.newW, w)
        val out = ByteArray(size * size)
        for (i in 0 until box.newH) {
            val wy = ys.frac[i]
            val r0 = ys.lo[i] * w
            val r1 = ys.hi[i] * w
            for (j in 0 until box.newW) {
                val wx = xs.frac[j]
                val x0 = xs.lo[j]
                val x1 = xs.hi[j]
                // Same float32 operation order as numpy: a*(1-wx) + b*wx, then top*(1-wy) + bottom*wy.
                val top = px(gray[r0 + x0]) * (1f - wx) + px(gray[r0 + x1]) * wx
                val bottom = px(gray[r1 + x0]) * (1f - wx) + px(gray[r1 + x1]) * wx
                val v = Math.rint((top * (1f - wy) + bottom * wy).toDouble()).toInt().coerceIn(0, 255)
                out[(i + box.padY) * size + j + box.padX] = v.toByte()
            }
        }
        return Pair(out, box)
    }

    /** Crop the padding off a [size] x [size] class map and resize it (nearest) to [h] x [w]. */
    fun undo(classMap: ByteArray, size: Int, box: Box, h: Int, w: Int): ByteArray {
        val out = ByteArray(h * w)
        val rows = IntArray(h) { minOf(((it + 0.5) * (box.newH.toDouble() / h)).toInt(), box.newH - 1) }
        val cols = IntArray(w) { minOf(((it + 0.5) * (box.newW.toDouble() / w)).toInt(), box.newW - 1) }
        for (i in 0 until h) {
            val src = (rows[i] + box.padY) * size + box.padX
            for (j in 0 until w) out[i * w + j] = classMap[src + cols[j]]
        }
        return out
    }

    private fun px(b: Byte): Float = (b.toInt() and 0xFF).toFloat()
}
