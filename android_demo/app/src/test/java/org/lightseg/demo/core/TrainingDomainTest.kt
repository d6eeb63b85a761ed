package org.lightseg.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File

/**
 * [TrainingDomain] on the case table the browser's trainingDomain is held to as well
 * (tests/deploy/test_web_demo.py): `src/test/resources/training_domain_cases.json`, or the
 * `training.domain.cases` system property; a `golden_card` case reads its card from the golden
 * folder (`golden.dir`, as [GoldenTest]).
 */
@Suppress("UNCHECKED_CAST")
class TrainingDomainTest {
    private val table = File(System.getProperty("training.domain.cases") ?: "src/test/resources/training_domain_cases.json")
    private val golden = File(System.getProperty("golden.dir") ?: "src/test/resources/golden")
    private val cases = (MiniJson(table.readText()).parse() as Map<String, Any?>)["cases"] as List<Map<String, Any?>>

    private fun card(case: Map<String, Any?>): Map<String, Any?> =
        (case["card"] ?: MiniJson(File(golden, case["golden_card"] as String).readText()).parse()) as Map<String, Any?>

    @Test
    fun derivesTheDomainAsTheBrowserDoes() {
        assertTrue("the table holds ${cases.size} cases", cases.size >= 10)
        for (case in cases) {
            val got = TrainingDomain.of(card(case))
            println("training domain ${case["name"]}: $got")
            assertEquals(case["name"] as String, case["domain"], got)
        }
    }

    @Test
    fun showsTheLineBesideTheMeasurementWithTheSameWording() {
        assertTrue("a case where the card says nothing", cases.any { it["domain"] == null })
        for (case in cases) assertEquals(case["name"] as String, case["line"], TrainingDomain.line(card(case)))
        assertEquals("model trained on: unknown (the card does not say)", TrainingDomain.line(null))
    }
}
