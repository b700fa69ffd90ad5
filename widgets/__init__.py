"""ipywidgets tools of CLIP Lab: thin shells over lab functions, driven in tests through their values.

    from widgets.prompt_playground import PromptPlayground   # zero-shot prompts on one image
"""
