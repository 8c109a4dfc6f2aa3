"""`dlpipe doctor FILE`: the data doctor for labelled sentences (the sentiment task's TSV/CSV files).

No network and no TensorFlow: likely label errors come from confident learning (cleanlab) on out-of-fold
probabilities of a logistic regression over TF-IDF words and word pairs; duplicates are the same words after case
and punctuation are dropped; near-duplicates are sentences whose character n-gram TF-IDF vectors have a cosine of
at least `similarity`; a duplicate with another label is a conflict the model cannot win.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np

from dlpipe.pipelines.doctor import Diagnosis, Finding, imbalance_findings, label_findings

TEXT_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def diagnose_text(data: str, config_file: str | None = None, sets: Iterable[str] = (), folds: int = 5,
                  similarity: float = 0.9, probe_c: float | None = None) -> Diagnosis:
    """Read the file(s) as a sentiment run would (load.* keys) and collect the findings."""
    from dlpipe.data.text import read_labelled_text
    from dlpipe.pipelines.api import resolve_config

    config = resolve_config("sentiment", config_file, sets, data)
    cfg = config["load"]
    files = [cfg.path] if isinstance(cfg.path, str) else list(cfg.path or [])
    texts, label_names, rows = [], [], []
    for file in files:
        table = read_labelled_text([file], cfg.format, cfg.header, cfg.text_column, cfg.label_column)
        texts += table.texts
        label_names += table.labels
        rows += [f"{file}#row{i + 1}" for i in range(len(table.texts))]
    names = list(cfg.labels) if cfg.labels else sorted(set(label_names))
    labels = [names.index(name) for name in label_names]
    probs, chosen = text_probabilities(texts, labels, len(names), folds, config.seed,
                                       TEXT_C_GRID if probe_c is None else (probe_c,))
    diagnosis = Diagnosis(data=", ".join(files), backbone="TF-IDF words and word pairs", folds=folds,
                          class_counts={name: labels.count(i) for i, name in enumerate(names)}, probe_c=chosen,
                          probe_accuracy=float(np.mean(np.argmax(probs, axis=1) == np.asarray(labels))))
    _, scores = label_findings(rows, labels, probs, names)
    where = {row: i for i, row in enumerate(rows)}
    diagnosis.findings += [Finding(s["path"], "label_error", f"{quote(texts[where[s['path']]])} is labelled "
                                   f"{s['given']} but reads as {s['predicted']} (out-of-fold probability "
                                   f"{s['confidence']:.2f})", f"relabel it {s['predicted']} or delete it")
                           for s in scores]
    diagnosis.findings += text_duplicate_findings(rows, texts, labels, names, similarity)
    diagnosis.findings += imbalance_findings(diagnosis.class_counts, diagnosis.data)
    return diagnosis


def quote(text: str, limit: int = 100) -> str:
    return '"' + (text if len(text) <= limit else text[:limit - 1] + "…") + '"'


def text_probabilities(texts: Sequence[str], labels: Sequence[int], num_classes: int, folds: int, seed: int,
                       grid: Sequence[float]) -> tuple[np.ndarray, float]:
    """Out-of-fold probabilities of a TF-IDF logistic regression, at the C with the lowest out-of-fold log-loss."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from dlpipe.data.split import stratified_folds

    y = np.asarray(labels)
    fold_of = np.asarray(stratified_folds(labels, folds, seed))
    best: tuple[float, np.ndarray, float] | None = None
    for c in grid:
        probs = np.full((len(y), num_classes), 1e-6)
        for fold in range(folds):
            held = fold_of == fold
            vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
            x = vectorizer.fit_transform([t for t, h in zip(texts, held) if not h])
            fit = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y[~held])
            probs[np.ix_(held, fit.classes_)] = fit.predict_proba(vectorizer.transform(
                [t for t, h in zip(texts, held) if h]))
        probs /= probs.sum(axis=1, keepdims=True)
        loss = float(-np.mean(np.log(probs[np.arange(len(y)), y])))
        if best is None or loss < best[0]:
            best = (loss, probs, c)
    assert best is not None
    return best[1], best[2]


def normalised(text: str) -> str:
    """The words of a sentence, lower case, without punctuation: what makes two sentences the same."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def text_duplicate_findings(rows: list[str], texts: list[str], labels: list[int], names: list[str],
                            similarity: float) -> list[Finding]:
    """Same words (duplicates; conflicting labels when they differ) and near-same sentences."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    findings: list[Finding] = []
    groups: dict[str, list[int]] = defaultdict(list)
    for index, text in enumerate(texts):
        groups[normalised(text)].append(index)
    same = set()
    for group in (g for g in groups.values() if len(g) > 1):
        same |= {(i, j) for i in group for j in group if i < j}
        given = sorted({names[labels[i]] for i in group})
        for position, index in enumerate(group):
            others = ", ".join(rows[j] for j in group if j != index)
            if len(given) > 1:
                findings.append(Finding(rows[index], "conflicting_labels", f"{quote(texts[index])} is "
                                        f"{names[labels[index]]} here, also at {others} ({', '.join(given)})",
                                        "keep one copy with the right label"))
            elif position:
                findings.append(Finding(rows[index], "exact_duplicate", f"{quote(texts[index])} also at "
                                        f"{rows[group[0]]}", "delete this copy"))
    x = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit_transform(texts)
    cosine = (x @ x.T).tocoo()
    for i, j, value in zip(cosine.row, cosine.col, cosine.data):
        if i < j and value >= similarity and (i, j) not in same:
            problem = "conflicting_labels" if labels[i] != labels[j] else "near_duplicate"
            findings.append(Finding(rows[j], problem, f"{quote(texts[j])} ({names[labels[j]]}) nearly the same as "
                                    f"{rows[i]} {quote(texts[i])} ({names[labels[i]]}; cosine {value:.2f})",
                                    "keep one copy with the right label" if problem == "conflicting_labels"
                                    else "delete it unless it adds a real variation"))
    return findings
