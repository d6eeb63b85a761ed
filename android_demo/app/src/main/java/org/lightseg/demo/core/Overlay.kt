package org.lightseg.demo.core

/** Class map -> ARGB pixels: each class's colour blended over the gray image (background keeps it). */
object Overlay {
    /**
     * @param gray uint8 image, row-major.
     * @param classMap class ids of the same size.
     * @param colors RGB per class id (the model card's colours).
     * @param alpha colour weight on foreground pixels (Python's palette.overlay uses 0.45).
     * @return ARGB_8888 pixels, ready for `Bitmap.createBitmap(pixels, w, h, ARGB_8888)`.
     */
    fun blend(gray: ByteArray, classMap: ByteArray, colors: List<IntArray>, alpha: Float = 0.45f): IntArray {
        require(gray.size == classMap.size) { "image and class map differ in size" }
        val out = IntArray(gray.size)
        for (k in gray.indices) {
            val g = gray[k].toInt() and 0xFF
            val c = classMap[k].toInt() and 0xFF
            var r = g
            var gr = g
            var b = g
            if (c > 0 && c < colors.size) {
                r = Math.round(g * (1 - alpha) + colors[c][0] * alpha)
                gr = Math.round(g * (1 - alpha) + colors[c][1] * alpha)
                b = Math.round(g * (1 - alpha) + colors[c][2] * alpha)
            }
            out[k] = (0xFF shl 24) or (r shl 16) or (gr shl 8) or b
        }
        return out
    }
}
