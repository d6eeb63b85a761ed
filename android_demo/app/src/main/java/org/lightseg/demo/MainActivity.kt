package org.lightseg.demo

import android.graphics.Bitmap
import android.graphics.Color
import android.graphics.ImageDecoder
import android.net.Uri
import android.os.Build
import android.os.Bundle
import android.provider.MediaStore
import android.text.SpannableStringBuilder
import android.text.Spanned
import android.text.style.ForegroundColorSpan
import android.view.View
import android.widget.Button
import android.widget.EditText
import android.widget.ImageView
import android.widget.TextView
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.core.widget.doAfterTextChanged
import org.lightseg.demo.core.Biometry
import org.lightseg.demo.core.Confidence
import org.lightseg.demo.core.Letterbox
import org.lightseg.demo.core.Overlay

/**
 * Pick a gallery image or take a photo, letterbox it per the model card, run the bundled int8
 * model (assets/model.tflite + assets/model.json), show the overlay, the legend, the inference
 * time, HC / BPD once the user enters the pixel size with what the model was trained on beside
 * them ("model trained on: lightseg-phantom (lightseg)", from the card, as the browser demo shows
 * it), the model's confidence in the head it drew and, below the card's calibrated threshold,
 * "low confidence: do not use" in red above the numbers (as `lightseg measure` flags it). All
 * pixel logic is in `core/`.
 */
class MainActivity : AppCompatActivity() {
    private lateinit var segmenter: Segmenter
    private var last: Segmenter.Result? = null

    private val pick = registerForActivityResult(ActivityResultContracts.GetContent()) { uri: Uri? ->
        uri?.let { show(decode(it)) }
    }
    private val camera = registerForActivityResult(ActivityResultContracts.TakePicturePreview()) { bmp: Bitmap? ->
        bmp?.let { show(it) }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        segmenter = Segmenter(this, "model.tflite", "model.json")
        findViewById<Button>(R.id.pick).setOnClickListener { pick.launch("image/*") }
        findViewById<Button>(R.id.camera).setOnClickListener { camera.launch(null) }
        findViewById<EditText>(R.id.pixelSize).doAfterTextChanged { report() }
        findViewById<TextView>(R.id.legend).text = legend()
    }

    private fun decode(uri: Uri): Bitmap =
        if (Build.VERSION.SDK_INT >= 28) {
            ImageDecoder.decodeBitmap(ImageDecoder.createSource(contentResolver, uri)) { d, _, _ ->
                d.allocator = ImageDecoder.ALLOCATOR_SOFTWARE
            }
        } else {
            @Suppress("DEPRECATION")
            MediaStore.Images.Media.getBitmap(contentResolver, uri)
        }

    private fun show(bitmap: Bitmap) {
        val (gray, h, w) = toGray(bitmap)
        val result = segmenter.run(gray, h, w)
        last = result
        val argb = Overlay.blend(gray, result.classMap, segmenter.colors)
        findViewById<ImageView>(R.id.overlay).setImageBitmap(Bitmap.createBitmap(argb, w, h, Bitmap.Config.ARGB_8888))
        report()
    }

    private fun report() {
        val r = last ?: return
        val px = findViewById<EditText>(R.id.pixelSize).text.toString().toDoubleOrNull()?.takeIf { it > 0 }
        val m = Biometry.measure(r.classMap, r.height, r.width, segmenter.classes, px)
        val text = StringBuilder("inference ${"%.1f".format(r.millis)} ms (${segmenter.size}x${segmenter.size} int8)\n")
        if (m == null) {
            text.append("no head found")
        } else {
            text.append("HC ${"%.1f".format(m.hc)} ${m.units}, BPD ${"%.1f".format(m.bpd)} ${m.units}, " +
                "OFD ${"%.1f".format(m.ofd)} ${m.units}")
        }
        // The model's training domain beside the numbers: an HC from a phantom-trained model is not
        // an HC from a model trained on real scans.
        text.append("\n").append(segmenter.trainingDomainLine)
        if (m != null && px == null) text.append("\nenter the pixel size for millimetres")
        val threshold = segmenter.confidenceThreshold
        text.append("\n").append(Confidence.line(r.confidence.score, threshold))
        findViewById<TextView>(R.id.result).text = text
        val low = Confidence.verdict(r.confidence.score, threshold) == "low"
        // Each structure below its own calibrated margin threshold is flagged too (lightseg measure's flags).
        val lowParts = Confidence.lowStructures(r.confidence.structures, segmenter.structureThresholds)
        val flags = (if (low) listOf(Confidence.LOW_CONFIDENCE) else emptyList()) + lowParts.map(Confidence::structureFlag)
        val flag = findViewById<TextView>(R.id.flag)
        flag.text = flags.joinToString("; ")
        flag.visibility = if (flags.isNotEmpty()) View.VISIBLE else View.GONE
    }

    private fun legend(): CharSequence {
        val sb = SpannableStringBuilder()
        segmenter.classes.forEachIndexed { k, name ->
            if (k == 0) return@forEachIndexed
            val c = segmenter.colors[k]
            val start = sb.length
            sb.append("■ ")
            sb.setSpan(ForegroundColorSpan(Color.rgb(c[0], c[1], c[2])), start, sb.length, Spanned.SPAN_EXCLUSIVE_EXCLUSIVE)
            sb.append("$name   ")
        }
        return sb
    }

    /** ITU-R BT.601 luma, what a grayscale ultrasound export holds in each channel anyway. */
    private fun toGray(bitmap: Bitmap): Triple<ByteArray, Int, Int> {
        val w = bitmap.width
        val h = bitmap.height
        val argb = IntArray(w * h)
        bitmap.getPixels(argb, 0, w, 0, 0, w, h)
        val gray = ByteArray(w * h) { k ->
            val p = argb[k]
            Math.round(0.299f * ((p shr 16) and 0xFF) + 0.587f * ((p shr 8) and 0xFF) + 0.114f * (p and 0xFF)).toByte()
        }
        return Triple(gray, h, w)
    }
}
