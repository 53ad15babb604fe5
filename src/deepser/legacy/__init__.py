"""What the original DEEPSER toolkit's users have, carried over to deepser.

- :mod:`deepser.legacy.keras2`: rebuild a Keras-2 model file (``.h5`` of the original trainer or
  LIVE_SER) in Keras 3 with Keras-2 numerics, weights copied.
- :mod:`deepser.legacy.importer`: turn such a model into a deepser model bundle for the
  recogniser (``deepser import-legacy``), with the original's feature presets.
- :mod:`deepser.legacy.database`: convert an original-format H5 database (``feat``, ``label``,
  ``start_indice``, ``end_indice``) into deepser's database format (``deepser convert-db``).
- :mod:`deepser.legacy.layers`: the registered Keras-2 ``hard_sigmoid``.

Original meta files (``format: original``) and ``*.gain.txt`` files (``gain: {method: minmax,
source: file}``) are read by :mod:`deepser.meta` and :mod:`deepser.gain` directly.
"""
