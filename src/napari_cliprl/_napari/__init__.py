"""napari contributions (the only package that imports napari or qtpy).

One private module per contribution: ``_reader``, ``_writer``, ``_sample_data`` and
``_widget`` (composed of the small sections in ``_sections``).
"""
