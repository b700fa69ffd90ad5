"""ipywidgets tools of CLIP Lab (thin shells over lab functions)."""
