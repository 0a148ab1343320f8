"""The annotation loop without a GUI: sessions, runs, export, fine-tuning, suggestions and
evaluation. The napari widget, ``cliprl`` and the benchmarks call these; nothing here imports
Qt.

- :mod:`.models`: which model (:class:`ModelSpec`), loading it, the demo checkpoint.
- :mod:`.session`: a session folder (label stacks per layer, reviewed flags); its parts
  :mod:`.session_info` (session.json), :mod:`.session_store` (the zarr stacks),
  :mod:`.session_open` (create, open, one writer), :mod:`.session_views` (read-only views)
  and :mod:`.locking` (the folder lock a session and an output folder hold while writing).
- :mod:`.store`: the label-store protocol a run writes into (a session or an output folder).
- :mod:`.run`: :func:`predict_sequence`, the one run loop.
- :mod:`.repropose`: the neighbours of a frame just reviewed, proposed again from it.
- :mod:`.output_folder`: ``cliprl predict``'s export-layout folder as a label store.
- :mod:`.export`: reviewed frames of a session -> export layout.
- :mod:`.finetune_job`: session -> training data -> fine-tune -> lineage.
- :mod:`.suggest`: which frame to review next.
- :mod:`.evaluate`: proposals vs ground truth, per layer.
"""
