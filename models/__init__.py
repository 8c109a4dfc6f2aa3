"""Networks and everything that makes them deployable (installed as `dlpipe.models`).

- backbones and heads: `backbones` (the backbone table), `efficientnet_lite` + `torch_legacy` (the
  ported ImageNet weights), `minilm` + `bert_layers` (the ported text encoder), `tfhub`, `small_cnn`,
  `classifier`, `text_classifiers`, `layers`, `text_layers`, `finetune`;
- `tasks`: one object per modality (image, text) owning inputs, preprocessing and outputs;
- `artifacts`: the one module that writes and reads an artifact's side files;
- `export`: the export-format registry, per task, and its exporters;
- `runtimes`: `load_runtime(path)`, the one way every consumer runs an artifact;
- `metrics`, `pretrained` (named ready-made models).
"""
