"""Command line: ``python -m dashboard [--model ...] [--data ...] [--layer ...]``."""
from __future__ import annotations

import argparse
import sys

from compute import data, embedding, models
from dashboard.config import AppConfig


def parse_args(argv: list[str] | None = None) -> AppConfig:
    parser = argparse.ArgumentParser(
        prog="python -m dashboard",
        description="Featurescope: an interactive dashboard of what a convolutional network has learned.",
    )
    parser.add_argument("--model", default="digits-cnn",
                        help=f"built-in model ({', '.join(models.MODELS)}) or a torchvision classifier name "
                             "such as resnet18 (needs --checkpoint). Default: digits-cnn")
    parser.add_argument("--checkpoint", default=None, help="state_dict file for the model (loaded with weights_only=True)")
    parser.add_argument("--data", default=None,
                        help=f"data set ({', '.join(data.DATASETS)}) or a folder of images (one subfolder per class). "
                             "Default: the model's own data set")
    parser.add_argument("--layer", default="", help="layer shown first (a dotted module name); default: the model's choice")
    parser.add_argument("--embedding", default="tsne", choices=list(embedding.EMBEDDERS), help="embedding shown first")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    parser.add_argument("--device", default="auto", help="auto (cuda when present), cpu or cuda[:n]")
    parser.add_argument("--cache-dir", default=None, help="where checkpoints and results are cached "
                                                          "(default $FEATURESCOPE_CACHE_DIR or ~/.cache/featurescope)")
    parser.add_argument("--debug", action="store_true", help="Dash debug mode (off by default; never on a shared host)")
    args = parser.parse_args(argv)
    return AppConfig(
        model=args.model, data=args.data or models.default_dataset(args.model), layer=args.layer,
        checkpoint=args.checkpoint, device=args.device, cache_dir=args.cache_dir, host=args.host, port=args.port,
        debug=args.debug, embedding=args.embedding,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    from compute.cache import set_cache_dir
    from dashboard import state
    from dashboard.app import create_app, keep_server_fork_safe

    keep_server_fork_safe()  # before validation runs the model: see its docstring
    if config.cache_dir:
        set_cache_dir(config.cache_dir)
    try:
        state.validate(config)
    except state.USER_ERRORS as error:
        print(f"featurescope: error: {str(error).strip(chr(39) + chr(34))}", file=sys.stderr)
        return 2
    app = create_app(config)
    print(f"Featurescope on http://{config.host}:{config.port}  (model {config.model}, data {config.data}; Ctrl+C stops)",
          flush=True)
    # One request thread: background jobs are forked from the server, and a fork taken while another thread
    # is inside SQLite (diskcache's job store) leaves the child with a lock nobody releases (seen here as
    # diskcache Timeouts and panels that never arrived). Requests are short; the heavy work runs in the jobs.
    app.run(host=config.host, port=config.port, debug=config.debug, threaded=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
