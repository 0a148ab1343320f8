"""The annotation loop without a GUI: sessions, runs, export, fine-tuning, suggestions and
evaluation. The napari widget, ``cliprl`` and the benchmarks call these; nothing here imports
Qt.

- :mod:`.models`: which model (:class:`ModelSpec`), loading it, the demo checkpoint.
- :mod:`.session`: a session folder (label stacks per layer, reviewed flags).
- :mod:`.store`: the label-store protocol a run writes into (a session or an output folder).
- :mod:`.run`: :func:`predict_sequence`, the one run loop.
- :mod:`.output_folder`: ``cliprl predict``'s export-layout folder as a label store.
- :mod:`.export`: reviewed frames of a session -> export layout.
- :mod:`.finetune_job`: session -> training data -> fine-tune -> lineage.
- :mod:`.suggest`: which frame to review next.
- :mod:`.evaluate`: proposals vs ground truth, per layer.
"""
