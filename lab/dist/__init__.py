"""Scale out on Ray (the `dist` extra): the driver (engine), the code its workers run (worker) and the
run folders they write (runs); sources expands what a run reads. See lab.dist.engine for the how.

    from lab import dist
    with dist.connect("auto"):
        dist.encode_images("ViT-B/32", ["shards/{00000..00640}.tar"], "runs/laion", workers=8)
    table, emb = dist.runs.read_run("runs/laion")
"""
from . import runs
from .engine import WAVE_SIZE, connect, encode_images, encode_texts, run_grid
from .sources import expand_braces, expand_sources

__all__ = ["connect", "encode_images", "encode_texts", "run_grid", "expand_braces", "expand_sources", "WAVE_SIZE",
           "runs"]
