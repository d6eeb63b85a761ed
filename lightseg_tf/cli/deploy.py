"""``lightseg export``: a run's model as a .tflite plus its model card."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("export", help="export a run's model to TFLite with a model card")
    p.add_argument("run", metavar="RUN", help="run directory made by lightseg train")
    p.add_argument("--quant", default="int8", choices=["int8", "float16", "dynamic", "float32"],
                   help="int8 = full integer (uint8 image in, uint8 class map / probs out)")
    p.add_argument("--out", required=True, help="output .tflite path (model.json card written beside it)")
    p.add_argument("--calib-n", type=int, default=64, help="TRAIN images used to calibrate int8 (default 64)")
    p.add_argument("--model-file", default=None, help="model inside the run (default best.keras)")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    import json

    from lightseg_tf.export import export_run, read_card

    path, card_path = export_run(args.run, args.out, args.quant, args.calib_n, args.model_file)
    card = read_card(card_path)
    tpu = card["edgetpu"]
    print(f"{path}  ({card['bytes'] / 1024:.0f} KiB, sha256 {card['sha256'][:12]}...)")
    print(f"card: {card_path}")
    print("edge TPU: " + ("compatible" if tpu["compatible"] else "NOT compatible: " + json.dumps(
        {k: tpu[k] for k in ("unsupported_ops", "float_tensors", "dynamic_shapes")})))
    for note in tpu["notes"]:
        print(f"  note: {note}")
    return 0
