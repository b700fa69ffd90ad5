"""Datasets: the protocol every dataset in lab implements, and the adapters.

A dataset is anything with
    __len__()              number of items
    source(i)              what encode_images accepts for item i: a file path or a PIL image
    content_key(i)         a stable string identifying item i's pixels, or None to hash the source
    labels                 pandas DataFrame, one row per item (at least a `label` column of ints)
    classes                list of class names, indexed by label
`lab.data.ImageFolder` reads the class-folder layout (`<root>/<class>/<image>`).
"""
from ._protocol import Dataset, FileList
from .folder import ImageFolder, IMAGE_EXTENSIONS, list_images

__all__ = ["Dataset", "FileList", "ImageFolder", "IMAGE_EXTENSIONS", "list_images"]
