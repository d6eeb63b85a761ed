import java.security.MessageDigest

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.lightseg.demo"
    compileSdk = 34
    defaultConfig {
        applicationId = "org.lightseg.demo"
        minSdk = 24
        targetSdk = 34
        versionCode = 1
        versionName = "1.0"
    }
    // The model is memory-mapped from the APK: it must stay uncompressed.
    androidResources { noCompress += "tflite" }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
}

dependencies {
    implementation("com.google.ai.edge.litert:litert:1.0.1")
    implementation("androidx.appcompat:appcompat:1.7.0")
    implementation("androidx.activity:activity-ktx:1.9.2")
    testImplementation("junit:junit:4.13.2")
}

// The exported model goes into the app as assets/model.tflite + model.json (the names Segmenter
// opens), copied before any variant's assets are merged, from the Gradle property lightsegModel:
// a .tflite whose card is the .json beside it; a relative path is from the repository root. The
// default is the quickstart's export (`make demo`). E.g.
//   ./gradlew assembleDebug -PlightsegModel=runs/my_run/model.tflite
val quickstartModel = "runs/quickstart/stages/export/student_int8.tflite"
val lightsegModel = providers.gradleProperty("lightsegModel")

val copyModelAssets by tasks.registering {
    group = "lightseg"
    description = "Copies the exported .tflite (-PlightsegModel, default $quickstartModel) and its card " +
        "into src/main/assets as model.tflite / model.json"
    val model = rootProject.projectDir.parentFile.toPath().resolve(lightsegModel.getOrElse(quickstartModel)).toFile()
    val assets = file("src/main/assets")
    val explicit = lightsegModel.isPresent
    // No declared outputs: src/main/assets is also an input of lint and the merge tasks, and a
    // declared output there makes Gradle ask for an ordering with each of them. Copying ~0.4 MB
    // on every build is cheaper than that wiring.
    doLast { installModel(model, assets, explicit)?.let { logger.warn(it) } }
}

tasks.configureEach {
    if (name.startsWith("merge") && name.endsWith("Assets")) dependsOn(copyModelAssets)
}

/**
 * Copy [model] and its card (the .json beside it) into [assets] as model.tflite and model.json,
 * after checking that the card's sha256 is the model's.
 *
 * Returns a warning when the files are missing but [assets] already holds a model and the path
 * was the default (not [explicit]), so an app built from copied assets still builds; null after a copy.
 * Plain Kotlin 1.3 and the JDK only: tests/deploy/test_android_assets.py compiles and runs it with
 * Debian's kotlinc, as Gradle cannot run on the CI machine.
 */
fun installModel(model: File, assets: File, explicit: Boolean): String? {
    val card = File(model.path.removeSuffix(".tflite") + ".json")
    val missing = listOf(model, card).filter { !it.isFile }
    if (missing.isNotEmpty()) {
        val have = File(assets, "model.tflite").isFile && File(assets, "model.json").isFile
        val what = "${missing.joinToString(" and ")}: no such file"
        if (have && !explicit) return "$what; keeping the model already in $assets"
        error("$what. Run `make demo` in the repository root (it writes runs/quickstart/stages/export/) " +
            "or pass -PlightsegModel=PATH.tflite (an export of `lightseg export`, its .json card beside it)")
    }
    val sha = Regex("\"sha256\"\\s*:\\s*\"([0-9a-fA-F]{64})\"").find(card.readText())?.groupValues?.get(1)
        ?: error("$card: no sha256 field, so not a lightseg model card; re-export the model with `lightseg export`")
    val bytes = model.readBytes()
    val actual = MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }
    if (!actual.equals(sha, ignoreCase = true)) {
        error("$card is the card of another model (its sha256 is not $model's): copy the .json exported with it")
    }
    assets.mkdirs()
    File(assets, "model.tflite").writeBytes(bytes)
    card.copyTo(File(assets, "model.json"), overwrite = true)
    return null
}
