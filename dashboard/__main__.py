"""Command line: ``python -m dashboard [--model ...] [--data ...] [--layer ...] [--cluster ADDRESS]``."""
from __future__ import annotations

import argparse
import os
import socket
import sys

from compute.specs import embedding, models
from dashboard.config import AppConfig

CLUSTER_ENV = "DASK_SCHEDULER_ADDRESS"  # Dask's own variable for a running cluster


def parse_args(argv: list[str] | None = None) -> AppConfig:
    parser = argparse.ArgumentParser(
        prog="python -m dashboard",
        description="Featurescope: an interactive dashboard of what a convolutional network has learned.",
    )
    parser.add_argument("--model", default=None,
                        help=f"built-in model ({', '.join(models.MODELS)}); a torchvision classifier name such as "
                             "resnet18 (with --weights or --checkpoint); package.module:function that returns the "
                             "model (an nn.Module taking images in [0, 1]); or a TorchScript file. Default: the "
                             "built-in CNN of the data (cifar10-cnn for --data cifar10, trained on first use), else "
                             "digits-cnn")
    parser.add_argument("--weights", default=None,
                        help="torchvision weights: DEFAULT, an enum name such as ResNet18_Weights.IMAGENET1K_V1 "
                             "(read from the torch hub cache, never downloaded), or random (a quick look)")
    parser.add_argument("--checkpoint", default=None, help="state_dict file for the model (loaded with weights_only=True)")
    parser.add_argument("--data", default=None,
                        help="data set: digits; cifar10, mnist or fashion-mnist, optionally with :ROOT (their "
                             "torchvision files under ROOT, default <cache dir>/datasets); or a folder of images "
                             "(one subfolder per class). Default: the model's own data set")
    parser.add_argument("--download", action="store_true",
                        help="download a missing cifar10/mnist/fashion-mnist into its ROOT (only when asked)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="crop images to this square size (default: the weights' preprocessing, else 224 for "
                             "folders and the data's own size for the rest)")
    parser.add_argument("--resize", type=int, default=None,
                        help="resize the shorter side to this before the crop (default: the weights' preprocessing, "
                             "else --image-size)")
    parser.add_argument("--layer", default="", help="layer shown first (a dotted module name); default: the model's choice")
    parser.add_argument("--embedding", default="tsne", choices=list(embedding.EMBEDDERS), help="embedding shown first")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    parser.add_argument("--device", default="auto", help="auto (cuda when present), cpu or cuda[:n]")
    parser.add_argument("--cluster", default=os.environ.get(CLUSTER_ENV) or None,
                        help="address of a running Dask scheduler whose workers run the models (default "
                             f"${CLUSTER_ENV}, else a local compute process is started)")
    parser.add_argument("--workers", type=int, default=1,
                        help="compute processes of the local cluster (default 1); with several, an image folder's "
                             "features are extracted by all of them in shards (each on its own device when it "
                             "has one). Not with --cluster, whose workers are its own")
    parser.add_argument("--cache-dir", default=None, help="where checkpoints and results are cached "
                                                          "(default $FEATURESCOPE_CACHE_DIR or ~/.cache/featurescope)")
    parser.add_argument("--debug", action="store_true", help="Dash debug mode (off by default; never on a shared host)")
    parser.add_argument("--no-precompute", dest="precompute", action="store_false",
                        help="do not embed every layer in the background after start-up (on by default; user "
                             "requests always come first)")
    args = parser.parse_args(argv)
    for option, value in (("--image-size", args.image_size), ("--resize", args.resize)):
        if value is not None and not 1 <= value <= 4096:
            parser.exit(2, f"featurescope: error: {option} {value} is not a size in pixels (1..4096)\n")
    if args.resize is not None and args.image_size is not None and args.resize < args.image_size:
        parser.exit(2, f"featurescope: error: --resize {args.resize} is smaller than --image-size {args.image_size}\n")
    if not 1 <= args.workers <= 64:
        parser.exit(2, f"featurescope: error: --workers {args.workers} is not a number of processes (1..64)\n")
    if args.workers > 1 and args.cluster:
        parser.exit(2, "featurescope: error: --workers starts a local cluster; --cluster uses a running one\n")
    model = args.model or models.default_model(args.data)
    return AppConfig(
        model=model, data=args.data or models.default_dataset(model), layer=args.layer,
        checkpoint=args.checkpoint, device=args.device, cache_dir=args.cache_dir, host=args.host, port=args.port,
        debug=args.debug, embedding=args.embedding, cluster=args.cluster, workers=args.workers, weights=args.weights,
        precompute=args.precompute,
        image_size=args.image_size, resize=args.resize, download=args.download,
    )


def fail(message: str) -> int:
    print(f"featurescope: error: {message}", file=sys.stderr)
    return 2


def check_port(host: str, port: int) -> str | None:
    """None when ``host:port`` can be served, else one line saying why not."""
    if not 0 < port < 65536:
        return f"port {port} is not a valid port (1..65535)"
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            # As the server will: connections of an earlier server still in TIME_WAIT do not make the port busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        reason = "is already in use" if error.errno in (98, 48, 10048) else f"cannot be used ({error.strerror})"
        return f"{host}:{port} {reason}; choose another with --port"
    return None


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    from dashboard.app import start_audit

    start_audit()
    problem = check_port(config.host, config.port)
    if problem:
        return fail(problem)
    from compute.paths import set_cache_dir
    from dashboard.service import ComputeService
    from dashboard.views.context import ERRORS_FOR_USERS, Meta

    if config.cache_dir:
        set_cache_dir(config.cache_dir)  # before the compute process starts: it inherits the environment
    service = ComputeService.start(config.source(), address=config.cluster, workers=config.workers)
    try:
        meta = Meta.from_description(service.run("describe", {}, timeout=600))
    except ERRORS_FOR_USERS as error:
        service.close(quietly=True)
        return fail(str(error).strip("'\""))
    from dashboard.app import create_app

    app = create_app(config, service, meta)
    print(f"Featurescope on http://{config.host}:{config.port}  (model {config.model}, data {config.data}, "
          f"compute on {meta.device}; Ctrl+C stops)", flush=True)
    try:
        # Many request threads: the server runs no model, so nothing forks and a slow request stalls no other page.
        app.run(host=config.host, port=config.port, debug=config.debug, threaded=True, use_reloader=False)
    finally:
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
