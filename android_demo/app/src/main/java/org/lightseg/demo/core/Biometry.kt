package org.lightseg.demo.core

/**
 * Head biometry from a class map at original resolution, the same ellipse as Python's
 * `lightseg_tf.anatomy.biometry.fit_head_ellipse` (to rounding; GoldenTest checks 1e-9):
 * the head is the union of the head-like classes; its largest 8-connected component (holes
 * filled) gives an outer boundary, the points (pixel centres) get a direct least-squares
 * ellipse (Fitzgibbon, Pilu, Fisher, PAMI 1999, in the numerically stable form of Halir &
 * Flusser, WSCG 1998), the boundary is offset half a pixel outwards, and HC is Ramanujan's
 * perimeter. BPD and OFD are the minor and major axes.
 */
data class Ellipse(val cx: Double, val cy: Double, val a: Double, val b: Double) {
    /** Ramanujan's second approximation of the perimeter. */
    val perimeter: Double
        get() {
            val h = ((a - b) * (a - b)) / ((a + b) * (a + b))
            return Math.PI * (a + b) * (1 + 3 * h / (10 + Math.sqrt(4 - 3 * h)))
        }
}

/**
 * The direct fit as fitted (no half-pixel growth: Python's `fit_ellipse_direct`) and its conic's
 * quadratic form about the centre scaled to 1 on the ellipse: `sqrt(rho2(x, y))` is Python's
 * `rho = sqrt((u/a)^2 + (v/b)^2)` in the ellipse's frame, so the confidence's residual needs no angle.
 */
class DirectFit(val ellipse: Ellipse, private val qa: Double, private val qb: Double, private val qc: Double) {
    fun rho2(x: Double, y: Double): Double {
        val dx = x - ellipse.cx
        val dy = y - ellipse.cy
        return qa * dx * dx + qb * dx * dy + qc * dy * dy
    }
}

/**
 * The head region of a mask as Python's `head_confidence` and `fit_head_ellipse` see it: the
 * largest 8-connected component ([largestSize] pixels), [filled] with its holes
 * (`binary_fill_holes`), and the centres of its outer-boundary pixels ([points], raster order).
 */
class HeadRegion(val largestSize: Int, val filled: BooleanArray, val points: List<DoubleArray>)

data class HeadMeasurement(val ellipse: Ellipse, val pixelSizeMm: Double?) {
    private val scale = pixelSizeMm ?: 1.0
    val units: String = if (pixelSizeMm != null) "mm" else "px"
    val hc: Double get() = ellipse.perimeter * scale
    val bpd: Double get() = 2 * ellipse.b * scale
    val ofd: Double get() = 2 * ellipse.a * scale
}

object Biometry {
    val HEAD_CLASS_NAMES = setOf("brain", "head", "fetal head", "skull", "csp", "lv")

    /** HC / BPD / OFD of the head in [classMap] ([h] x [w]); null when no head is found. */
    fun measure(classMap: ByteArray, h: Int, w: Int, classes: List<String>, pixelSizeMm: Double?): HeadMeasurement? {
        val headIds = headIds(classes).toSet()
        if (headIds.isEmpty()) return null
        val head = BooleanArray(h * w) { (classMap[it].toInt() and 0xFF) in headIds }
        val ellipse = fitEllipse(headRegion(head, h, w).points) ?: return null
        return HeadMeasurement(ellipse, pixelSizeMm)
    }

    /** Ids of the head-like classes, ascending. */
    fun headIds(classes: List<String>): List<Int> =
        classes.withIndex().filter { it.index > 0 && it.value.toLowerCase() in HEAD_CLASS_NAMES }.map { it.index }

    /** The largest component of [mask], filled, and its boundary points (see [HeadRegion]). */
    fun headRegion(mask: BooleanArray, h: Int, w: Int): HeadRegion {
        val largest = largestComponent(mask, h, w)
        val size = largest.count { it }
        val outside = outside(largest, h, w)
        return HeadRegion(size, BooleanArray(h * w) { size > 0 && !outside[it] }, boundary(largest, outside, h, w))
    }

    /** The largest 8-connected component of [mask]. */
    fun largestComponent(mask: BooleanArray, h: Int, w: Int): BooleanArray {
        val label = IntArray(h * w)
        var best = 0
        var bestSize = 0
        var next = 0
        val stack = IntArray(h * w)
        for (start in mask.indices) {
            if (!mask[start] || label[start] != 0) continue
            next += 1
            var top = 0
            var size = 0
            stack[top++] = start
            label[start] = next
            while (top > 0) {
                val p = stack[--top]
                size += 1
                val y = p / w
                val x = p % w
                for (dy in -1..1) for (dx in -1..1) {
                    val yy = y + dy
                    val xx = x + dx
                    if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue
                    val q = yy * w + xx
                    if (mask[q] && label[q] == 0) {
                        label[q] = next
                        stack[top++] = q
                    }
                }
            }
            if (size > bestSize) {
                bestSize = size
                best = next
            }
        }
        return BooleanArray(h * w) { best != 0 && label[it] == best }
    }

    /**
     * The background reached from the image border through 4-connected non-[region] pixels: its
     * complement is the region with its holes filled (`binary_fill_holes`).
     */
    private fun outside(region: BooleanArray, h: Int, w: Int): BooleanArray {
        val outside = BooleanArray(h * w)
        val stack = java.util.ArrayDeque<Int>()
        fun seed(p: Int) {
            if (!region[p] && !outside[p]) {
                outside[p] = true
                stack.addLast(p)
            }
        }
        for (x in 0 until w) { seed(x); seed((h - 1) * w + x) }
        for (y in 0 until h) { seed(y * w); seed(y * w + w - 1) }
        while (stack.isNotEmpty()) {
            val p = stack.removeLast()
            val y = p / w
            val x = p % w
            if (y > 0) seed(p - w)
            if (y < h - 1) seed(p + w)
            if (x > 0) seed(p - 1)
            if (x < w - 1) seed(p + 1)
        }
        return outside
    }

    /**
     * Centres of the region's outer-boundary pixels: region pixels on the image edge or with a
     * 4-neighbour [outside] (so holes neither count nor need filling: a hole pixel has no
     * 4-neighbour outside, so these are the boundary pixels of the filled region too).
     */
    private fun boundary(region: BooleanArray, outside: BooleanArray, h: Int, w: Int): List<DoubleArray> {
        val pts = ArrayList<DoubleArray>()
        for (y in 0 until h) for (x in 0 until w) {
            val p = y * w + x
            if (!region[p]) continue
            val edge = y == 0 || y == h - 1 || x == 0 || x == w - 1 ||
                outside[p - w] || outside[p + w] || outside[p - 1] || outside[p + 1]
            if (edge) pts.add(doubleArrayOf(x + 0.5, y + 0.5))
        }
        return pts
    }

    /**
     * The head ellipse (Python's `fit_head_ellipse`): [fitEllipseDirect] with the semi-axes grown by
     * half a pixel, because the boundary runs through pixel centres, half a pixel inside the edge.
     */
    fun fitEllipse(points: List<DoubleArray>): Ellipse? {
        val e = fitEllipseDirect(points)?.ellipse ?: return null
        return Ellipse(e.cx, e.cy, e.a + 0.5, e.b + 0.5)
    }

    /** Direct least-squares ellipse through [points], as fitted (see [DirectFit]); null if degenerate. */
    fun fitEllipseDirect(points: List<DoubleArray>): DirectFit? {
        if (points.size < 5) return null
        var mx = 0.0
        var my = 0.0
        for (p in points) { mx += p[0]; my += p[1] }
        mx /= points.size
        my /= points.size
        var ss = 0.0
        for (p in points) ss += (p[0] - mx) * (p[0] - mx) + (p[1] - my) * (p[1] - my)
        val s = Math.sqrt(ss / points.size)
        if (s == 0.0) return null
        val s1 = Array(3) { DoubleArray(3) }
        val s2 = Array(3) { DoubleArray(3) }
        val s3 = Array(3) { DoubleArray(3) }
        for (p in points) {
            val x = (p[0] - mx) / s
            val y = (p[1] - my) / s
            val d1 = doubleArrayOf(x * x, x * y, y * y)
            val d2 = doubleArrayOf(x, y, 1.0)
            for (i in 0..2) for (j in 0..2) {
                s1[i][j] += d1[i] * d1[j]
                s2[i][j] += d1[i] * d2[j]
                s3[i][j] += d2[i] * d2[j]
            }
        }
        val s3inv = Mat3.inverse(s3) ?: return null
        val t = Mat3.scale(Mat3.mul(s3inv, Mat3.transpose(s2)), -1.0)  // a2 = T a1
        val m = Mat3.add(s1, Mat3.mul(s2, t))
        // Premultiply by inv(C1), C1 = [[0, 0, 2], [0, -1, 0], [2, 0, 0]].
        val mm = arrayOf(
            DoubleArray(3) { m[2][it] / 2 }, DoubleArray(3) { -m[1][it] }, DoubleArray(3) { m[0][it] / 2 })
        val a1 = Mat3.eigenvectors(mm).firstOrNull { 4 * it[0] * it[2] - it[1] * it[1] > 0 } ?: return null
        val a2 = Mat3.apply(t, a1)
        val (aa, bb, cc) = Triple(a1[0], a1[1], a1[2])
        val (dd, ee, ff) = Triple(a2[0], a2[1], a2[2])
        val den = bb * bb - 4 * aa * cc
        val cx = (2 * cc * dd - bb * ee) / den
        val cy = (2 * aa * ee - bb * dd) / den
        val num = 2 * (aa * ee * ee + cc * dd * dd - bb * dd * ee + den * ff)
        val root = Math.sqrt((aa - cc) * (aa - cc) + bb * bb)
        val r1 = -Math.sqrt(num * (aa + cc + root)) / den
        val r2 = -Math.sqrt(num * (aa + cc - root)) / den
        if (r1.isNaN() || r2.isNaN()) return null
        // The conic about its centre is Q(d) + f0 (no linear term there): on the ellipse Q(d / s) = -f0.
        val k = -(aa * cx * cx + bb * cx * cy + cc * cy * cy + dd * cx + ee * cy + ff) * s * s
        // Undo the normalisation.
        val e = Ellipse(cx * s + mx, cy * s + my, maxOf(r1, r2) * s, minOf(r1, r2) * s)
        return DirectFit(e, aa / k, bb / k, cc / k)
    }
}

/** The few 3x3 operations the ellipse fit needs. */
internal object Mat3 {
    fun mul(a: Array<DoubleArray>, b: Array<DoubleArray>) =
        Array(3) { i -> DoubleArray(3) { j -> a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j] } }

    fun add(a: Array<DoubleArray>, b: Array<DoubleArray>) = Array(3) { i -> DoubleArray(3) { j -> a[i][j] + b[i][j] } }
    fun scale(a: Array<DoubleArray>, k: Double) = Array(3) { i -> DoubleArray(3) { j -> a[i][j] * k } }
    fun transpose(a: Array<DoubleArray>) = Array(3) { i -> DoubleArray(3) { j -> a[j][i] } }
    fun apply(a: Array<DoubleArray>, v: DoubleArray) = DoubleArray(3) { i -> a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2] }

    fun det(a: Array<DoubleArray>) =
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
            a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])

    fun inverse(a: Array<DoubleArray>): Array<DoubleArray>? {
        val d = det(a)
        if (Math.abs(d) < 1e-300) return null
        val c = Array(3) { i ->
            DoubleArray(3) { j ->
                val r = (0..2).filter { it != j }
                val k = (0..2).filter { it != i }
                val minor = a[r[0]][k[0]] * a[r[1]][k[1]] - a[r[0]][k[1]] * a[r[1]][k[0]]
                (if ((i + j) % 2 == 0) 1 else -1) * minor / d
            }
        }
        return c
    }

    /** Eigenvectors of the real eigenvalues (roots of the characteristic cubic). */
    fun eigenvectors(a: Array<DoubleArray>): List<DoubleArray> {
        val tr = a[0][0] + a[1][1] + a[2][2]
        val minors = a[0][0] * a[1][1] - a[0][1] * a[1][0] + a[0][0] * a[2][2] - a[0][2] * a[2][0] +
            a[1][1] * a[2][2] - a[1][2] * a[2][1]
        val vectors = ArrayList<DoubleArray>()
        for (lambda in cubicRoots(-tr, minors, -det(a))) {
            val m = Array(3) { i -> DoubleArray(3) { j -> a[i][j] - if (i == j) lambda else 0.0 } }
            // An eigenvector is orthogonal to every row of (A - lambda I): take the best cross product.
            var best = cross(m[0], m[1])
            for (v in listOf(cross(m[0], m[2]), cross(m[1], m[2]))) if (norm(v) > norm(best)) best = v
            vectors.add(best)
        }
        return vectors
    }

    /** Real roots of x^3 + b x^2 + c x + d. */
    fun cubicRoots(b: Double, c: Double, d: Double): List<Double> {
        val q = (3 * c - b * b) / 9
        val r = (9 * b * c - 27 * d - 2 * b * b * b) / 54
        val disc = q * q * q + r * r
        return if (disc > 0) {
            val s = Math.cbrt(r + Math.sqrt(disc))
            val t = Math.cbrt(r - Math.sqrt(disc))
            listOf(s + t - b / 3)
        } else {
            val theta = Math.acos((r / Math.sqrt(-q * q * q)).coerceIn(-1.0, 1.0))
            val m = 2 * Math.sqrt(-q)
            listOf(0.0, 2 * Math.PI, 4 * Math.PI).map { m * Math.cos((theta + it) / 3) - b / 3 }
        }
    }

    private fun cross(u: DoubleArray, v: DoubleArray) =
        doubleArrayOf(u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])

    private fun norm(v: DoubleArray) = Math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
}
