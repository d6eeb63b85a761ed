package org.lightseg.demo

import android.content.Context
import android.os.SystemClock
import org.json.JSONArray
import org.json.JSONObject
import org.lightseg.demo.core.Confidence
import org.lightseg.demo.core.Letterbox
import org.lightseg.demo.core.TrainingDomain
import org.tensorflow.lite.Interpreter
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/**
 * The exported model and its card: uint8 gray [1, S, S, 1] in, uint8 class map [1, S, S] and uint8
 * probabilities [1, S, S, C] out (LiteRT's Interpreter, signature "serving_default"). The card's
 * SHA-256 is checked by the Python tools; here the card gives the size, classes, colours, the
 * probabilities' quantization, the calibrated confidence threshold and what the model was trained on.
 */
class Segmenter(context: Context, modelAsset: String, cardAsset: String) {
    /** The class map at the image's size and the head [confidence] of the same inference. */
    data class Result(val classMap: ByteArray, val height: Int, val width: Int, val millis: Double,
                      val confidence: Confidence.Result)

    private val interpreter: Interpreter
    val size: Int
    val classes: List<String>
    val colors: List<IntArray>
    private val probsScale: Float
    private val probsZeroPoint: Int

    /** The card's "low confidence: do not use" threshold (lightseg calibrate), null when uncalibrated. */
    val confidenceThreshold: Double?

    /** The card's per-structure margin thresholds ({class: threshold}, lightseg calibrate), empty when none. */
    val structureThresholds: Map<String, Double>

    /** "model trained on: lightseg-phantom (lightseg)" (the card's training domain), shown beside every measurement. */
    val trainingDomainLine: String

    init {
        val card = JSONObject(context.assets.open(cardAsset).bufferedReader().readText())
        size = card.getJSONObject("input").getInt("size")
        val cls = card.getJSONArray("classes")
        classes = List(cls.length()) { cls.getJSONObject(it).getString("name") }
        colors = List(cls.length()) { k ->
            val c = cls.getJSONObject(k).getJSONArray("color")
            IntArray(3) { c.getInt(it) }
        }
        // Without its quantization the uint8 probabilities mean nothing: refuse such a card.
        val probs = card.getJSONObject("outputs").getJSONObject("probs")
        require(probs.getString("dtype") == "uint8") {
            "$cardAsset: the app reads uint8 probabilities, the card says ${probs.getString("dtype")}"
        }
        val q = probs.getJSONObject("quantization")
        probsScale = q.getDouble("scale").toFloat()
        probsZeroPoint = q.getInt("zero_point")
        val threshold = card.optJSONObject("confidence")?.opt("threshold")
        confidenceThreshold = (threshold as? Number)?.toDouble()
        val perStructure = card.optJSONObject("confidence")?.optJSONObject("structures")
        structureThresholds = perStructure?.keys()?.asSequence()
            ?.mapNotNull { name -> (perStructure.opt(name) as? Number)?.let { name to it.toDouble() } }
            ?.toMap() ?: emptyMap()
        trainingDomainLine = TrainingDomain.line(plainObject(card))
        interpreter = Interpreter(load(context, modelAsset), Interpreter.Options().setNumThreads(2))
    }

    /** org.json's tree as the core reads JSON: maps, lists, JSON null as null. */
    private fun plainObject(o: JSONObject): Map<String, Any?> = o.keys().asSequence().associateWith { plain(o.get(it)) }

    private fun plain(v: Any?): Any? = when (v) {
        null, JSONObject.NULL -> null
        is JSONObject -> plainObject(v)
        is JSONArray -> List(v.length()) { plain(v.get(it)) }
        else -> v
    }

    private fun load(context: Context, asset: String): MappedByteBuffer {
        val fd = context.assets.openFd(asset)
        FileInputStream(fd.fileDescriptor).channel.use {
            return it.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
        }
    }

    /**
     * Segment a uint8 gray image ([h] x [w]); the class map comes back at the image's own size, with
     * the head confidence from the same inference's probabilities (Python's `predict_device`).
     */
    fun run(gray: ByteArray, h: Int, w: Int): Result {
        val (boxed, box) = Letterbox.apply(gray, h, w, size)
        val input = ByteBuffer.allocateDirect(size * size).order(ByteOrder.nativeOrder()).put(boxed)
        input.rewind()
        val classMap = ByteBuffer.allocateDirect(size * size).order(ByteOrder.nativeOrder())
        val probs = ByteBuffer.allocateDirect(size * size * classes.size).order(ByteOrder.nativeOrder())
        val t0 = SystemClock.elapsedRealtimeNanos()
        interpreter.runSignature(mapOf("image" to input), mapOf("class_map" to classMap, "probs" to probs))
        val ms = (SystemClock.elapsedRealtimeNanos() - t0) / 1e6
        val out = ByteArray(size * size)
        classMap.rewind()
        classMap.get(out)
        val original = Letterbox.undo(out, size, box, h, w)
        val rawProbs = ByteArray(size * size * classes.size)
        probs.rewind()
        probs.get(rawProbs)
        val p = Confidence.unletterboxProbs(Confidence.dequantize(rawProbs, probsScale, probsZeroPoint), size,
            classes.size, box, h, w)
        val confidence = Confidence.head(p, original, h, w, classes, Confidence.bandWidthPx(h, w, size))
        return Result(original, h, w, ms, confidence)
    }
}
