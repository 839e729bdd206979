"""Export a shard dataset to layouts other tools read (``python -m datagen.export``).

- ``folders``: ``OUT/<split>/<column>/<id>.png`` per image column (lossless PNG, names matching
  across columns, as BasicSR's paired-image dataset expects) plus ``OUT/<split>/meta.parquet``
  and ``meta.csv`` with the index rows;
- ``hf``: ``OUT/<split>-NNNNN-of-MMMMM.parquet`` that Hugging Face ``datasets`` opens with
  ``load_dataset("parquet", data_dir=OUT)``: image columns as ``Image`` features, index columns
  with their Arrow types.

An export is cut into chunks (one per source shard and split) and records its progress in
``OUT/export.json``, so an interrupted export re-run finishes the chunks that are missing and
leaves the finished ones alone. The modules: ``selection`` (what to export), ``encode`` (pixels
to PNG), ``folders`` and ``hf`` (the two layouts), ``manifest`` (resume and ownership),
``run`` (the loop) and ``cli``.
"""
