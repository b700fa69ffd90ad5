"""The core: load a CLIP (models, registry, hub, checkpoints, and the torch side in _build, _hf and
_towers; families: what the studies read in each kind of image tower),
encode images and texts (encoding, images) through the persistent embedding cache (cache), and
memoize results (memo). Everything else in lab builds on these; they import nothing above them.

    from lab.core.models import load_model        # also lab.load_model
    from lab.core import memo

Submodules are imported on use: `import lab.core` loads neither torch nor open_clip.
"""
__all__: list[str] = []
