"""Video fusion (DESIGN 2.11): reviewed labels carried by optical flow, fused with the model.

numpy + torch, no Qt. ``context``: a frame's propagation context (the nearest reviewed frames
before and after it, carried to it; torch-free); ``grid``: that context on the model's stride-4
grid, and the fused full-resolution label maps; ``edges``: snapping label maps to image edges;
``samples``: training samples from the reviewed frames alone. The model's side of the fusion
(the fusion head, the side actions) lives in ``napari_cliprl.model.fusion_head``; its training
in ``napari_cliprl.training.fusion_*``.
"""
