"""``lightseg models list`` and ``lightseg models summary``."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("models", help="list the registered architectures or summarise one")
    msub = p.add_subparsers(dest="models_command", metavar="MODELS_COMMAND")
    msub.required = True
    q = msub.add_parser("list", help="name, role, parameters, GFLOPs, QAT-ready, (latency)")
    q.add_argument("--size", type=int, default=256, help="square input side (default 256)")
    q.add_argument("--classes", type=int, default=4, help="output classes (default 4)")
    q.add_argument("--latency", action="store_true", help="also time one Keras forward pass (slow)")
    q.add_argument("--only", nargs="*", default=None, help="restrict to these names")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=run_list)
    q = msub.add_parser("summary", help="Keras summary of one model")
    q.add_argument("name")
    q.add_argument("--size", type=int, default=256)
    q.add_argument("--classes", type=int, default=4)
    q.add_argument("--options", default=None, help="builder options as YAML, e.g. '{width: 0.5}'")
    q.set_defaults(func=run_summary)


def run_list(args) -> int:
    from lightseg_tf.deploy.model_stats import model_rows

    rows = model_rows(args.size, args.classes, args.latency, args.only)
    if args.json:
        print(json.dumps({"size": args.size, "classes": args.classes, "models": rows}, indent=2))
        return 0
    lat = " latency ms" if args.latency else ""
    print(f"{'name':<18}{'role':<9}{'params':>12}{'GFLOPs':>9}  QAT{lat}")
    for r in rows:
        if r["parameters"] is None:
            print(f"{r['name']:<18}{r['role']:<9}  n/a at {args.size} px: {r['note']}")
            continue
        extra = f"{r['keras_latency_ms']:>11.1f}" if args.latency else ""
        print(f"{r['name']:<18}{r['role']:<9}{r['parameters']:>12,}{r['gflops']:>9.2f}  "
              f"{'yes' if r['qat_ready'] else 'no ':<3}{extra}")
    return 0


def run_summary(args) -> int:
    import yaml

    from lightseg_tf.deploy.model_stats import count_flops
    from lightseg_tf.models import build_model, get_model_spec

    spec = get_model_spec(args.name)
    model = build_model(args.name, (args.size, args.size, 1), args.classes, **(yaml.safe_load(args.options or "{}")))
    model.summary(line_length=110)
    print(f"{spec.name} ({spec.role}, {spec.paper}): {model.count_params():,} parameters, "
          f"{count_flops(model) / 1e9:.3f} GFLOPs at {args.size}x{args.size}x1, QAT-ready: {spec.qat_ready}")
    return 0
