"""The MPNet port (`model.architecture: mpnet`): its forward pass against a NumPy transcription of HF's
MPNetModel, strict loading, the <s>/</s> WordPiece framing, and a whole run with its exports, on a small random
MPNet laid out like the fetched all-mpnet-base-v2. The real weights' own checks skip where they are not fetched."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SENTENCES, TINY_TEXT_SETS, write_sentences

sys.path.insert(0, str(Path(__file__).parent))
from mpnet_fixtures import TINY, mpnet_vocab_lines, write_tiny_mpnet  # noqa: E402
from assets import require_module, requires


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("mpnet") / "all-mpnet-base-v2"
    return folder, write_tiny_mpnet(folder)


@pytest.fixture
def tiny_mpnet(tiny_folder, monkeypatch):
    monkeypatch.setenv("DLPIPE_MPNET_DIR", str(tiny_folder[0]))
    return tiny_folder


def hf_bucket(relative_position: np.ndarray, num_buckets: int = 32, max_distance: int = 128) -> np.ndarray:
    """HF `MPNetEncoder.relative_position_bucket`, line by line."""
    ret = 0
    n = -relative_position
    num_buckets //= 2
    ret += (n < 0).astype(np.int64) * num_buckets
    n = np.abs(n)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    safe = np.maximum(n, 1).astype(np.float32)  # torch.log(0) is -inf, cast to garbage and masked by is_small
    val_if_large = max_exact + (np.log(safe / max_exact) / math.log(max_distance / max_exact)
                                * (num_buckets - max_exact)).astype(np.int64)
    val_if_large = np.minimum(val_if_large, num_buckets - 1)
    return ret + np.where(is_small, n, val_if_large)


def reference_forward(w: dict, ids: np.ndarray, heads: int, eps: float = 1e-5) -> np.ndarray:
    """HF `MPNetModel` (eval mode) in NumPy: the last hidden state."""
    from scipy.special import erf

    def norm(x, p):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]

    def linear(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    mask = (ids != 1).astype(np.int64)
    positions = np.cumsum(mask, 1) * mask + 1  # create_position_ids_from_input_ids, padding_idx 1
    x = norm(w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][positions],
             "embeddings.LayerNorm")
    length = ids.shape[1]
    context, memory = np.arange(length)[:, None], np.arange(length)[None, :]
    bias = w["encoder.relative_attention_bias.weight"][hf_bucket(memory - context)].transpose(2, 0, 1)[None]
    extended = (1.0 - mask[:, None, None, :]) * np.finfo(np.float32).min
    batch, width = ids.shape[0], x.shape[-1]
    layer = 0
    while f"encoder.layer.{layer}.attention.attn.q.weight" in w:
        p = f"encoder.layer.{layer}."
        q, k, v = (linear(x, p + f"attention.attn.{n}").reshape(batch, length, heads, -1).transpose(0, 2, 1, 3)
                   for n in "qkv")
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(width // heads) + bias + extended
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        c = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
        x = norm(linear(c, p + "attention.attn.o") + x, p + "attention.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
        x = norm(linear(h, p + "output.dense") + x, p + "output.LayerNorm")
        layer += 1
    return x


def test_relative_buckets_match_hf_at_every_offset_up_to_past_max_distance():
    from dlpipe.models.bert_layers import relative_position_buckets

    length = 300
    ours = np.asarray(relative_position_buckets(length))
    positions = np.arange(length)
    assert (ours == hf_bucket(positions[None, :] - positions[:, None])).all()
    assert set(np.unique(ours)) == set(range(32)) - {16}  # 16 would be "key before query at distance 0"


def test_encoder_matches_hf_mpnet_padding_included(tiny_mpnet):
    from dlpipe.models.mpnet import mpnet_encoder, mpnet_tokenizer

    _, tensors = tiny_mpnet
    tokenizer = mpnet_tokenizer()
    encoded = tokenizer.encode(["The battery died after a week.", "Great!", "Not what I expected, sadly."], 16)
    assert encoded["input_ids"][1, 4] == 1 and encoded["attention_mask"][1, 4] == 0  # <s> great ! </s> <pad>
    model = mpnet_encoder("pretrained", 16)
    assert len([layer for layer in model.layers if "layer_" in layer.name]) == TINY["num_layers"]  # config.json read
    ours = model.predict([encoded["input_ids"], encoded["attention_mask"]], verbose=0)
    theirs = reference_forward(tensors, encoded["input_ids"], TINY["num_heads"])
    real = encoded["attention_mask"].astype(bool)
    assert np.abs(ours[real] - theirs[real]).max() < 1e-4


def test_loader_refuses_another_architecture_naming_the_file(tiny_mpnet, tmp_path):
    from safetensors.numpy import save_file

    from dlpipe.errors import DataError
    from dlpipe.models.mpnet import load_mpnet_weights, mpnet_encoder

    _, tensors = tiny_mpnet
    model = mpnet_encoder(None, 8, config={**TINY, "vocab_size": len(mpnet_vocab_lines())})
    partial = {k: v for k, v in tensors.items() if k != "encoder.relative_attention_bias.weight"}
    save_file(partial, str(tmp_path / "bert.safetensors"))
    with pytest.raises(DataError) as caught:
        load_mpnet_weights(model, tmp_path / "bert.safetensors")
    message = str(caught.value)
    assert "bert.safetensors" in message and "relative_attention_bias" in message and "\n" not in message


def test_unfetched_weights_name_the_fetch_script(tmp_path, monkeypatch):
    from dlpipe.errors import WeightsUnavailableError
    from dlpipe.models.mpnet import mpnet_encoder

    monkeypatch.setenv("DLPIPE_MPNET_DIR", str(tmp_path / "nothing"))
    with pytest.raises(WeightsUnavailableError) as caught:
        mpnet_encoder("pretrained", 16)
    assert "scripts/fetch_mpnet.sh" in str(caught.value) and "\n" not in str(caught.value)


def test_catalog_counts_the_parameters_keras_builds():
    from dlpipe.models.mpnet import mpnet_encoder
    from dlpipe.models.text_catalog import MPNET_PARAMETERS

    assert mpnet_encoder(None, 8).count_params() == MPNET_PARAMETERS


def _hf_mpnet_tokenizer(vocab_file: Path):
    """HF `tokenizers` set up as all-mpnet-base-v2's tokenizer.json (BertNormalizer, RobertaProcessing)."""
    tokenizers = require_module("tokenizers")
    from tokenizers import normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    reference = tokenizers.Tokenizer(WordPiece.from_file(str(vocab_file), unk_token="[UNK]"))
    reference.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    reference.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    reference.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    reference.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>"])
    return reference


def review_sentences() -> list[str]:
    from dlpipe.data.text import read_labelled_text

    return read_labelled_text(sorted(SENTENCES.glob("*_labelled.txt"))).texts


def test_tokenizers_frame_with_s_and_pad_like_hf(tiny_mpnet):
    from dlpipe.data.tf_wordpiece import TFWordPieceTokenizer
    from dlpipe.models.mpnet import mpnet_files, mpnet_tokenizer

    ours = mpnet_tokenizer()
    assert (ours.cls_id, ours.pad_id, ours.sep_id) == (0, 1, 2)
    reference = _hf_mpnet_tokenizer(mpnet_files()[1])
    texts = review_sentences() + ["<s> literal </s> stay whole, [CLS] does not", "Café naïve — déjà vu 😀", ""]
    assert [t for t in texts if [0, *ours.token_ids(t), 2] != reference.encode(t).ids] == []
    in_graph = TFWordPieceTokenizer(mpnet_files()[1], 48)(texts)
    python = ours.encode(texts, 48)
    assert (in_graph["input_ids"].numpy() == python["input_ids"]).all()
    assert (in_graph["attention_mask"].numpy() == python["attention_mask"]).all()


# ------------------------------------------------------------------------ a whole run on the small MPNet


@pytest.fixture(scope="module")
def mpnet_run(tiny_folder, tmp_path_factory):
    from dlpipe.pipelines import api

    patch = pytest.MonkeyPatch()
    patch.setenv("DLPIPE_MPNET_DIR", str(tiny_folder[0]))
    folder = tmp_path_factory.mktemp("mpnet-run")
    texts = write_sentences(folder / "sentences.txt", 200, seed=5)
    sets = [*TINY_TEXT_SETS, f"load.path={texts}", "model.architecture=mpnet", "train.epochs=8",
            "train.learning_rate=0.001", "preprocess.sequence_length=16",
            "export.formats=[keras, savedmodel, tflite, tflite-dynamic]"]
    try:
        yield api.run("sentiment", out=folder / "run", sets=sets, echo=lambda _: None)
    finally:
        patch.undo()


@pytest.mark.long
def test_run_learns_and_every_export_agrees(mpnet_run):
    """The export stage's own parity check passed for each artifact; the run beats chance on its split."""
    out = mpnet_run.out_dir
    assert mpnet_run.metrics["accuracy"] > 0.75
    assert (out / "model.tflite").is_file() and (out / "model_dynamic.tflite").is_file() and (out / "savedmodel").is_dir()
    assert (out / "vocab.txt").read_text(encoding="utf-8").splitlines()[:3] == ["<s>", "<pad>", "</s>"]


@pytest.mark.long
def test_tflite_reads_mediapipe_bert_framing_as_its_own(mpnet_run):
    """MediaPipe's BertTokenizer frames with [CLS]/[SEP] and pads with 0: the file maps those to <s>/</s>."""
    from ai_edge_litert.interpreter import Interpreter

    from dlpipe.data.wordpiece import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.from_vocab_file(mpnet_run.out_dir / "vocab.txt")
    texts = ["The phone was great and I love it.", "Terrible, broken, the worst.", "It was really good."]
    ours = tokenizer.encode(texts, 16)
    bert = {"ids": np.zeros_like(ours["input_ids"]), "mask": ours["attention_mask"]}
    for row, text in enumerate(texts):
        pieces = [tokenizer.vocab["[CLS]"], *tokenizer.token_ids(text), tokenizer.vocab["[SEP]"]]
        bert["ids"][row, :len(pieces)] = pieces

    def probabilities(feeds: dict[str, np.ndarray]) -> np.ndarray:
        interpreter = Interpreter(model_path=str(mpnet_run.out_dir / "model.tflite"))
        details = {detail["name"]: detail for detail in interpreter.get_input_details()}
        for detail in details.values():
            interpreter.resize_tensor_input(detail["index"], [len(texts), 16])
        interpreter.allocate_tensors()
        for name, detail in details.items():
            interpreter.set_tensor(detail["index"], feeds.get(name, np.zeros((len(texts), 16), np.int32)))
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    import keras

    import dlpipe.models.bert_layers  # noqa: F401  (registers the layers model.keras holds)

    own = probabilities({"ids": ours["input_ids"], "mask": ours["attention_mask"]})
    trained = keras.saving.load_model(mpnet_run.out_dir / "model.keras")
    keras_probabilities = trained.predict({"input_ids": ours["input_ids"], "attention_mask": ours["attention_mask"]},
                                          verbose=0)
    assert np.abs(own - keras_probabilities).max() < 1e-4
    assert np.abs(probabilities(bert) - own).max() < 1e-5


# ------------------------------------------------------------------------ the real weights, where fetched


def _fetched() -> bool:
    from dlpipe.errors import WeightsUnavailableError
    from dlpipe.models.mpnet import mpnet_files

    try:
        mpnet_files()
    except WeightsUnavailableError:
        return False
    return True


@requires(_fetched(), "all-mpnet-base-v2 weights", "bash scripts/fetch_mpnet.sh; scripts/setup.sh does")
@pytest.mark.long
def test_real_weights_embed_paraphrases_close_and_match_their_tokenizer_json(monkeypatch):
    import tokenizers

    monkeypatch.delenv("DLPIPE_MPNET_DIR", raising=False)  # the module's tiny-run fixture may still have it set
    from dlpipe.models.mpnet import mpnet_files, mpnet_sentence_model, mpnet_tokenizer

    tokenizer = mpnet_tokenizer()
    reference = tokenizers.Tokenizer.from_file(str(mpnet_files()[1].parent / "tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()
    texts = review_sentences()
    assert [t for t in texts if [0, *tokenizer.token_ids(t), 2] != reference.encode(t).ids] == []
    encoded = tokenizer.encode(["A man is playing a guitar.", "Someone plays the guitar.",
                                "The stock market fell today."], 24)
    e = mpnet_sentence_model(max_length=24).predict([encoded["input_ids"], encoded["attention_mask"]], verbose=0)
    assert e[0] @ e[1] > 0.8 and abs(e[0] @ e[2]) < 0.2
