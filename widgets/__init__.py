"""ipywidgets tools of CLIP Lab: thin shells over lab functions, driven in tests through their values.

    from widgets.prompt_playground import PromptPlayground     # zero-shot prompts on one image
    from widgets.embedding_explorer import EmbeddingExplorer   # a map linked to an image grid
    from widgets.attribution_viewer import AttributionViewer   # attribution overlays for image + prompt
    from widgets.robustness_dashboard import RobustnessDashboard  # effective robustness, click for details
    from widgets.head_explorer import HeadExplorer             # heads of a ViT: their texts, maps, ablation cost
"""
import lab  # noqa: F401,E402  first: the lab's thread policy is in place before the widgets load numpy and torch
