"""Figures CLIP Lab reports draw: plain functions from data (arrays, DataFrames, images) to plotly
figures. Notebooks and widgets call them; tests check what they contain.

    from figures import images, zeroshot
    images.image_grid(pil_images, titles)           # a grid of pictures with captions
    zeroshot.template_bars(per_template_df)         # accuracy of each prompt template

Every figure draws with figures.palette (Okabe-Ito colours, one marker symbol per class); importing
the package makes it plotly's default template, so figures drawn by hand use it too.
"""
from .palette import use as _use_palette

_use_palette()  # colour-blind-safe colours and distinct symbols: plotly's default from here on (figures.palette)
