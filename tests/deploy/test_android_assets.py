"""android_demo's copyModelAssets: its copy function, lifted out of app/build.gradle.kts and run on the
JVM with Debian's kotlinc (no Gradle or Android SDK here; the task's wiring itself is not run)."""

import json
import re
import shutil
import subprocess

import pytest
from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "android_demo" / "app" / "build.gradle.kts"
GOLDEN = REPO_ROOT / "android_demo" / "app" / "src" / "test" / "resources" / "golden"
MAIN = """
fun main(args: Array<String>) {
    try {
        println("ok " + installModel(File(args[0]), File(args[1]), args[2] == "explicit"))
    } catch (e: IllegalStateException) {
        println("error " + e.message)
    }
}
"""


@pytest.fixture(scope="module")
def install_model(tmp_path_factory):
    """``(model, assets, explicit) -> printed line`` running the build script's ``installModel``."""
    if not (shutil.which("kotlinc") and shutil.which("java")):
        pytest.skip("Debian's kotlin is not installed (.ci/run installs it)")
    script = SCRIPT.read_text()
    function = re.search(r"^fun installModel\(.*?^}\n", script, re.S | re.M)
    assert function, f"{SCRIPT}: no top-level `fun installModel` found"
    work = tmp_path_factory.mktemp("install_model")
    source = work / "InstallModel.kt"
    source.write_text("import java.io.File\nimport java.security.MessageDigest\n" + function.group(0) + MAIN)
    jar = work / "install_model.jar"
    out = subprocess.run(["kotlinc", "-nowarn", str(source), "-include-runtime", "-d", str(jar)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]

    def run(model, assets, explicit=False):
        out = subprocess.run(["java", "-jar", str(jar), str(model), str(assets), "explicit" if explicit else "default"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip()

    return run


def test_copy_model_assets_installs_the_export_and_refuses_a_wrong_or_missing_one(install_model, tmp_path):
    export = tmp_path / "runs" / "stages" / "export"
    export.mkdir(parents=True)
    for name in ("student_int8.tflite", "student_int8.json"):
        shutil.copy(GOLDEN / name, export / name)
    model, assets, absent = export / "student_int8.tflite", tmp_path / "assets", tmp_path / "none" / "m.tflite"

    first = install_model(absent, assets)  # a fresh clone before `make demo`
    assert first.startswith(f"error {absent} and {absent.with_suffix('.json')}: no such file. Run `make demo`")
    assert install_model(model, assets) == "ok null"
    assert (assets / "model.tflite").read_bytes() == model.read_bytes()
    assert (assets / "model.json").read_text() == (export / "student_int8.json").read_text()
    # Assets copied earlier keep an app building when the default export is gone, not a named one.
    assert install_model(absent, assets) == f"ok {absent} and {absent.with_suffix('.json')}: no such file; " \
                                            f"keeping the model already in {assets}"
    assert install_model(absent, assets, explicit=True).startswith("error ")

    card = json.loads((export / "student_int8.json").read_text())
    (export / "student_int8.json").write_text(json.dumps({**card, "sha256": "0" * 64}))
    assert install_model(model, assets) == (f"error {export / 'student_int8.json'} is the card of another model "
                                            f"(its sha256 is not {model}'s): copy the .json exported with it")
    (export / "student_int8.json").write_text("{}")
    assert "no sha256 field, so not a lightseg model card" in install_model(model, assets)
