"""Reading and preparing inputs (installed as `dlpipe.data`); no model code, no pipeline code.

- images: `images` (class-per-folder scanning, bad-file reasons), `preprocess` (the one decode/resize/
  colour path used by training, export and inference), `augment`, `datasets` (tf.data);
- text: `text` (labelled and unlabelled files, `TextPreprocessing`, `read_vocabulary`), `wordpiece`
  (WordPiece in Python) and `tf_wordpiece` (the same rules in the graph);
- `split` (stratified, seeded splits).
"""
