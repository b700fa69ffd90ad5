"""Datasets: the protocol every dataset in lab implements, and the adapters.

A dataset is anything with
    __len__()              number of items
    source(i)              what encode_images accepts for item i: a file path or a PIL image
    content_key(i)         a stable string identifying item i's pixels, or None to hash the source
    labels                 pandas DataFrame, one row per item (at least a `label` column of ints)
    classes                list of class names, indexed by label
`lab.data.ImageFolder` reads the class-folder layout (`<root>/<class>/<image>`), `lab.data.ImageNet`
ImageNet's `<root>/val/<wnid>/` layout, `lab.data.PointFile` stored embeddings with their image files;
`load_dataset(name, root, split, n)` picks one by name.
"""
from ._protocol import Dataset, FileList, Subset
from ._catalog import dataset_identity, dataset_spec, default_classnames, list_datasets, load_dataset
from .folder import ImageFolder, IMAGE_EXTENSIONS, list_images
from .imagenet import ImageNet, WnidFolders
from .points import PointFile, points_embeddings, save_points

__all__ = ["Dataset", "FileList", "ImageFolder", "ImageNet", "WnidFolders", "IMAGE_EXTENSIONS", "list_images",
           "PointFile", "points_embeddings", "save_points", "Subset", "dataset_identity", "dataset_spec", "default_classnames", "list_datasets", "load_dataset"]
