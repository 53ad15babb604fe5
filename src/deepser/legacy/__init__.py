"""What the original DEEPSER toolkit's users have, carried over to deepser.

- :mod:`deepser.legacy.keras2`: rebuild a Keras-2 model file (``.h5`` of the original trainer or
  LIVE_SER) in Keras 3 with Keras-2 numerics, weights copied.
- :mod:`deepser.legacy.importer`: turn such a model into a deepser model bundle for the
  recogniser (``deepser import-legacy``), with the original's feature presets.
- :mod:`deepser.legacy.database`: convert an original-format H5 database (``feat``, ``label``,
  ``start_indice``, ``end_indice``) into deepser's database format (``deepser convert-db``).
- :mod:`deepser.legacy.presets`: the original's feature presets, task and gain specs.

Keras 2's ``hard_sigmoid`` is registered in :mod:`deepser.models.custom_layers`, so imported
bundles load wherever models load.

Original meta files (``format: original``) and ``*.gain.txt`` files (``gain: {method: minmax,
source: file}``) are read by :mod:`deepser.corpus.meta` and :mod:`deepser.corpus.gain` directly.
"""
