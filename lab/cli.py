"""Command line: `python -m lab <command>`.

    python -m lab models [--available]
    python -m lab encode FOLDER|FILE.txt|IMAGE... --model NAME [--pretrained TAG] --out emb.npy
    python -m lab encode --texts prompts.txt --model NAME --out text_emb.npy
    python -m lab encode --world test:200 --model lab-vit-tiny --out runs/world.npy   # built-in images
    python -m lab encode SRC... --model NAME --engine ray [--address auto] [--workers N] [--gpus-per-worker G] \
        --out DIR|emb.npy                     # on a Ray cluster (the dist extra); SRC may be shards/{000..099}.tar
    python -m lab cache info
    python -m lab cache clear [--model NAME_OR_FINGERPRINT]
    python -m lab cache import DIR             # merge a Ray run's output folder into the cache
    python -m lab export DIR --format clip-retrieval [--out DEST]   # img_emb/*.npy + metadata/*.parquet
    python -m lab report [--config report.yaml] [-p NAME VALUE ...] [--notebooks NB ...] [--out DIR]
                         [--cell-timeout SECONDS]
    python -m lab workshop agenda|build|check|prepare [--start 09:30] [--out DIR|FILE]   # lab.workshop
    python -m lab train --arch lab-vit-tiny --steps 2500 --out FILE.pt    # lab.training.train (--help: all options)
    python -m lab card lab-vit-tiny [--n 2000] [--no-write]              # lab.training.model_card
    python -m lab suites materialize|sheet|build-adversarial ...         # lab.training.suites

`encode` writes an (N, D) float32 .npy and an index CSV beside it (`emb.index.csv`: row, item,
ok, error); rows of items that failed are NaN. Errors print one line, no traceback.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import warnings
from importlib import import_module
from pathlib import Path

import numpy as np

from .core import memo
from .core.cache import EmbeddingCache
from .core.encoding import DECODES
from .errors import LabError
from .data.folder import IMAGE_EXTENSIONS, list_images

__all__ = ["cmd_models", "cmd_encode", "cmd_cache", "cmd_export", "cmd_report", "PASS_THROUGH", "build_parser", "main"]


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024


def _image_sources(sources: list[str]) -> list[str]:
    paths: list[str] = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise LabError(f"{p} contains no image files ({', '.join(IMAGE_EXTENSIONS)})")
            paths += found
        elif p.suffix.lower() == ".txt" and p.is_file():
            base = p.parent
            paths += [str(base / line.strip()) for line in p.read_text().splitlines() if line.strip()]
        else:
            paths.append(s)  # a missing file is reported per item by the encoder
    return paths


def cmd_models(args) -> int:
    from .core.registry import list_models
    for name in list_models(available=args.available):
        print(name)
    return 0


def cmd_encode(args) -> int:
    from .core.models import load_model
    if not args.sources and not args.texts and not args.world:
        raise LabError("nothing to encode: pass image folders/files, a .txt list of paths, --texts FILE or --world SPLIT")
    device = args.device
    if device is None and args.engine == "ray" and not args.gpus_per_worker:  # as CPU workers compute it
        device = "cpu"
    model = load_model(args.model, pretrained=args.pretrained, device=device, cache=args.cache_dir,
                       trust_checkpoint=args.trust_checkpoint)
    if args.engine == "ray":
        return _encode_on_ray(args, model)
    if args.texts:
        if not Path(args.texts).is_file():
            raise LabError(f"--texts {args.texts}: no such file")
        items = Path(args.texts).read_text().splitlines()
        emb, failures = model.encode_texts(items, batch_size=args.batch_size, strict=args.strict,
                                           return_failures=True)
    elif args.world:
        from .data.world import SPLIT_SEEDS
        from .data.shapeworld import WorldDataset
        split, _, n = args.world.partition(":")
        if split not in SPLIT_SEEDS or not (n or "200").isdigit():
            raise LabError(f"--world takes SPLIT[:N] with SPLIT one of {list(SPLIT_SEEDS)}; got {args.world!r}")
        dataset = WorldDataset(split, n=int(n or 200))
        items = [dataset.content_key(i) for i in range(len(dataset))]
        emb, failures = model.encode_images(dataset, batch_size=args.batch_size, strict=args.strict,
                                            return_failures=True)
    else:
        items = _image_sources(args.sources)
        emb, failures = model.encode_images(items, batch_size=args.batch_size, strict=args.strict,
                                            return_failures=True, decode=args.decode)
    out = Path(args.out)
    out = out if out.suffix == ".npy" else out.with_name(out.name + ".npy")  # as np.save names it
    return _save_npy(model, out, emb, items, {f.index: f.reason for f in failures})


def _save_npy(model, out: Path, emb, items, errors: dict) -> int:
    """emb.npy + emb.index.csv (row, item, ok, error); exit status 1 when an item failed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, emb)
    index = out.with_name(out.stem + ".index.csv")
    with open(index, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "item", "ok", "error"])
        for i, item in enumerate(items):
            w.writerow([i, item, int(i not in errors), errors.get(i, "")])
    print(f"{model.name} [{model.fingerprint[:12]}]: {len(items) - len(errors)} of {len(items)} encoded "
          f"-> {out} {emb.shape}, index {index}")
    return 1 if errors else 0


def _encode_on_ray(args, model) -> int:
    """--engine ray: the run folder is --out (or emb.parts/ beside --out emb.npy, which is then written too)."""
    import json
    from . import dist
    from .dist import runs
    if args.world:
        raise LabError("--world renders images in this process; drop --engine ray")
    out = Path(args.out)
    folder = out.with_name(out.stem + ".parts") if out.suffix == ".npy" else out
    settings = dict(workers=args.workers, gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker,
                    batch_size=args.batch_size, resume=not args.no_resume, wave_size=args.wave_size,
                    resources=json.loads(args.resources) if args.resources else None, address=args.address,
                    cache_import=not args.no_import)
    items = None  # the rows of emb.npy: the run's items, or every line of --texts (repeats included)
    if args.texts:
        if not Path(args.texts).is_file():
            raise LabError(f"--texts {args.texts}: no such file")
        items = Path(args.texts).read_text().splitlines()
        manifest = dist.encode_texts(model, items, folder, **settings)
    elif args.sources:
        manifest = dist.encode_images(model, args.sources, folder, **settings, decode=args.decode)
    else:
        raise LabError("nothing to encode: pass image folders/files, .txt lists, tar shards or --texts FILE")
    counts, last = manifest["counts"], manifest["last_run"]
    print(f"{model.name} [{model.fingerprint[:12]}] on ray: {counts['ok']} of {counts['items']} encoded -> {folder} "
          f"({last['dispatched']} dispatched, {last['from_cache']} from the cache, {last['waves_skipped']} waves "
          f"done before)")
    if out.suffix == ".npy":
        table, emb = runs.read_run(folder)
        items = table["item"].tolist() if items is None else items
        row_of = dict(zip(table["item"], range(len(table))))
        rows = [row_of[item] for item in items]
        errors = {i: table["error"][r] for i, r in enumerate(rows) if not table["ok"][r]}
        return _save_npy(model, out, emb[rows], items, errors)
    return 1 if counts["failed"] else 0


def cmd_cache(args) -> int:
    cache = EmbeddingCache(args.cache_dir)
    if args.action == "info":
        rows = cache.info()
        print(f"cache: {cache.path}")
        for r in rows:
            print(f"  {r['model']:<40} {r['fingerprint'][:12]}  {r['modality']:<5} {r['entries']:>9,} entries "
                  f"{_human(r['bytes']):>10}")
        size = sum(os.path.getsize(p) for p in cache.directory.glob(cache.path.name + "*"))
        print(f"  total {sum(r['entries'] for r in rows):,} entries, {_human(size)} on disk")
    elif args.action == "import":
        from .dist.runs import import_run
        if not args.run:
            raise LabError("cache import needs the run folder: python -m lab cache import DIR")
        done = import_run(args.run, cache)
        print(f"imported {done['rows']:,} rows from {done['parts']} parts of {args.run} into {cache.path}")
    else:
        n = cache.clear(args.model)
        print(f"removed {n:,} embeddings" + (f" of {args.model}" if args.model else ""))
        if args.model:
            print("memoized results (maps, metrics, projections, figures) are kept: their keys are digests; "
                  "`python -m lab cache clear` without --model removes them too")
        else:
            files, size = memo.clear(cache.directory)
            print(f"removed {files:,} memoized results ({_human(size)}): {', '.join(memo.FOLDERS)}")
    return 0


def cmd_export(args) -> int:
    from .dist.runs import export_clip_retrieval
    dest = export_clip_retrieval(args.run, args.out)
    print(f"exported {args.run} -> {dest} (img_emb/*.npy + metadata/*.parquet)")
    return 0


def cmd_report(args) -> int:
    from .report import CELL_TIMEOUT, load_config, run_report
    config = load_config(args.config)
    if args.cell_timeout is None:
        args.cell_timeout = config.get("cell_timeout", CELL_TIMEOUT)
    parameters = {**(config.get("parameters") or {}), **dict(args.parameter or [])}
    manifest = run_report(args.notebooks or config.get("notebooks"), parameters,
                          config.get("notebook_parameters") or {}, args.out or config.get("out"),
                          progress=not args.no_progress, cell_timeout=args.cell_timeout)
    return 0 if manifest["ok"] else 1


# Commands whose module parses its own arguments: `python -m lab train --help` shows train's options.
PASS_THROUGH = {"train": ("lab.training.train", "train a built-in CLIP on ShapeWorld"),
                "card": ("lab.training.model_card", "evaluate a built-in model and write its model card"),
                "suites": ("lab.training.suites", "materialize the shift suites, a contact sheet, or rebuild adversarial")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab", description="CLIP Lab command line")
    p.add_argument("--cache-dir", default=None, help="embedding cache folder (default $LAB_CACHE_DIR or per-user)")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("models", help="list model names")
    m.add_argument("--available", action="store_true", help="only those that load now without network")
    m.set_defaults(func=cmd_models)
    e = sub.add_parser("encode", help="encode images or texts to an .npy plus an index CSV")
    e.add_argument("sources", nargs="*", help="image folders, image files, or .txt files listing paths")
    e.add_argument("--texts", help="a text file, one text per line, instead of images")
    e.add_argument("--world", help="ShapeWorld images instead: SPLIT[:N], e.g. test:200")
    e.add_argument("--model", required=True, help="model name, 'arch:tag', hub id or checkpoint path")
    e.add_argument("--pretrained", default=None, help="open_clip pretrained tag or checkpoint file")
    e.add_argument("--out", required=True, help="output .npy path")
    e.add_argument("--batch-size", type=int, default=None)
    e.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    e.add_argument("--strict", action="store_true", help="stop at the first bad item")
    e.add_argument("--decode", choices=DECODES, default="auto",
                   help="where JPEG files are decoded: gpu (on the model's device), cpu (PIL in worker processes), "
                        "auto (default: gpu on CUDA)")
    e.add_argument("--trust-checkpoint", action="store_true", help="allow full unpickling (runs code from the file)")
    e.add_argument("--engine", choices=["process", "ray"], default="process",
                   help="process (default): this machine; ray: a Ray cluster (pip install 'clip-lab[dist]')")
    g = e.add_argument_group("--engine ray")
    g.add_argument("--address", default=None,
                   help="'auto' or ray://HOST:10001 to attach (default: start a local cluster)")
    g.add_argument("--workers", type=int, default=1, help="encoder workers, one model each")
    g.add_argument("--gpus-per-worker", type=float, default=0)
    g.add_argument("--cpus-per-worker", type=float, default=1, help="also each worker's torch threads")
    g.add_argument("--resources", default=None, help='custom Ray resources per worker as JSON, e.g. \'{"encoder": 1}\'')
    g.add_argument("--wave-size", type=int, default=1024, help="items per resumable wave (a shard is never split)")
    g.add_argument("--no-resume", action="store_true", help="start the output folder over")
    g.add_argument("--no-import", action="store_true",
                   help="leave the local cache alone (python -m lab cache import DIR later)")
    e.set_defaults(func=cmd_encode)
    c = sub.add_parser("cache", help="inspect, prune or fill the embedding cache")
    c.add_argument("action", choices=["info", "clear", "import"])
    c.add_argument("run", nargs="?", help="import: a Ray run's output folder")
    c.add_argument("--model", default=None, help="clear only this model (name or fingerprint prefix)")
    c.set_defaults(func=cmd_cache)
    x = sub.add_parser("export", help="write a Ray run's output in another tool's layout")
    x.add_argument("run", help="the run folder (--out of encode --engine ray)")
    x.add_argument("--format", choices=["clip-retrieval"], required=True,
                   help="clip-retrieval: img_emb/img_emb_N.npy + metadata/metadata_N.parquet (autofaiss reads it)")
    x.add_argument("--out", default=None, help="destination (default RUN/clip-retrieval)")
    x.set_defaults(func=cmd_export)
    r = sub.add_parser("report", help="run the notebooks through papermill into an HTML report")
    r.add_argument("--config", help="YAML with out, notebooks, parameters, notebook_parameters")
    r.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="a parameter for every notebook that declares it (repeatable)")
    r.add_argument("--notebooks", nargs="+", help="notebooks to run (default: notebooks/NN_*.ipynb)")
    r.add_argument("--out", help="output folder (default runs/report-<time>)")
    r.add_argument("--no-progress", action="store_true", help="no per-cell progress bars")
    r.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS",
                   help="a cell running longer fails its notebook, the next one runs (default 1800; 0: no limit)")
    r.set_defaults(func=cmd_report)
    from .workshop.cli import add_parser as add_workshop
    add_workshop(sub)
    for name, (module, help_text) in PASS_THROUGH.items():
        sub.add_parser(name, help=f"{help_text} ({module}; {name} --help: its options)", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in PASS_THROUGH:
        return import_module(PASS_THROUGH[argv[0]][0]).main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return args.func(args)
    except (LabError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
