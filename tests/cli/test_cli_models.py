import json

from lightseg_tf.cli import main


def test_models_list_json_covers_the_registry_and_reports_unbuildable_sizes(capsys):
    assert main(["models", "list", "--json", "--size", "64", "--only", "unet", "lightseg_student", "sm_pspnet"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in out["models"]}
    assert set(rows) == {"unet", "lightseg_student", "sm_pspnet"}
    assert rows["lightseg_student"]["qat_ready"] and rows["lightseg_student"]["role"] == "student"
    assert rows["unet"]["parameters"] > 0 and rows["unet"]["gflops"] > 0
    assert rows["sm_pspnet"]["parameters"] is None and "48" in rows["sm_pspnet"]["note"]


def test_models_summary(capsys):
    assert main(["models", "summary", "lightseg_student", "--size", "64", "--options", "{width: 0.25}"]) == 0
    assert "QAT-ready: True" in capsys.readouterr().out
