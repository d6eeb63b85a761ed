package org.lightseg.demo.core

/**
 * What the model was trained on, from its card, as the app shows it beside a measurement: an HC
 * from a model trained on the synthetic phantom is not one from a model trained on real scans.
 * The browser demo's `trainingDomain` / `trainingDomainLine` (tflite/web/core.js), ported: the
 * card's `training_domain` (`dataset`, `format`; lightseg_tf/deploy/convert.py writes it), and
 * for a card written before that field existed its `training_data` (the folder's last path
 * component, `/` or `\`, and its format). Both ports are held to one case table,
 * `src/test/resources/training_domain_cases.json`.
 *
 * The card is the parsed JSON: objects as maps, JSON null as null. As in JavaScript, an empty
 * string counts as absent; so does a value that is not a string (Python writes strings or null).
 */
object TrainingDomain {
    /** What is shown when the card does not say. */
    const val UNKNOWN = "unknown (the card does not say)"

    /** "lightseg-phantom (lightseg)", "hc18" (the format is the name), "phantom (lightseg)"; null when the card says nothing. */
    fun of(card: Map<String, Any?>?): String? {
        val d = card?.get("training_domain") as? Map<*, *>
        val t = card?.get("training_data") as? Map<*, *>
        val name = text(d?.get("dataset"))
            ?: text(t?.get("path"))?.split('/', '\\')?.lastOrNull { it.isNotEmpty() }
        val format = text(d?.get("format")) ?: text(t?.get("format"))
        if (name == null) return format
        return if (format != null && format != name) "$name ($format)" else name
    }

    /** The line beside a measurement: "model trained on: lightseg-phantom (lightseg)", or ... [UNKNOWN]. */
    fun line(card: Map<String, Any?>?): String = "model trained on: ${of(card) ?: UNKNOWN}"

    private fun text(v: Any?): String? = (v as? String)?.takeIf { it.isNotEmpty() }
}
