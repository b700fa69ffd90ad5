"""Figures CLIP Lab reports draw: plain functions from data (arrays, DataFrames, images) to plotly
figures. Notebooks and widgets call them; tests check what they contain.

    from figures import images, zeroshot
    images.image_grid(pil_images, titles)           # a grid of pictures with captions
    zeroshot.template_bars(per_template_df)         # accuracy of each prompt template
"""
