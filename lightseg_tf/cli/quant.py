"""``lightseg quantize``: QAT fine-tuning or post-training quantization of a run's model."""

from __future__ import annotations

PTQ = {"ptq-int8": "int8", "ptq-float16": "float16", "ptq-dynamic": "dynamic"}


def register(sub) -> None:
    p = sub.add_parser("quantize", help="QAT fine-tune (then int8 export) or post-training quantize a run")
    p.add_argument("run", metavar="RUN", help="run directory made by lightseg train")
    p.add_argument("--mode", required=True, choices=["qat", *PTQ], help="qat, ptq-int8, ptq-float16, ptq-dynamic")
    p.add_argument("--epochs", type=int, default=2, help="QAT fine-tuning epochs (default 2)")
    p.add_argument("--lr", type=float, default=2e-4, help="QAT learning rate (default 2e-4)")
    p.add_argument("--out", default=None, help="output .tflite (default RUN/model_<mode>.tflite)")
    p.add_argument("--calib-n", type=int, default=64, help="TRAIN images for calibration (default 64)")
    p.set_defaults(func=run_quantize)


def run_quantize(args) -> int:
    from pathlib import Path

    from lightseg_tf.deploy.convert import export_run

    out = Path(args.out) if args.out else Path(args.run) / f"model_{args.mode.replace('-', '_')}.tflite"
    if args.mode == "qat":
        from lightseg_tf.training.qat import qat_finetune

        qat_path = qat_finetune(args.run, args.epochs, args.lr)
        print(f"QAT model: {qat_path}")
        path, card = export_run(args.run, out, "int8", args.calib_n, model_file=qat_path.name)
    else:
        path, card = export_run(args.run, out, PTQ[args.mode], args.calib_n)
    print(f"{path}\ncard: {card}")
    return 0
