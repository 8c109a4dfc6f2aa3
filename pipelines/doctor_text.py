"""`dlpipe doctor FILE`: the data doctor for labelled sentences (the sentiment task's TSV/CSV files).

No network and no TensorFlow: duplicates are the same words after case and punctuation are dropped;
near-duplicates are sentences whose character n-gram TF-IDF vectors have a cosine of at least `similarity`; a
duplicate with another label is a conflict the model cannot win. Label errors are not searched for: confident
learning on a TF-IDF logistic regression's out-of-fold probabilities found 75-85% of labels flipped in the Yelp
sentences but at 11-13% precision (BENCHMARKS.md), its own bag-of-words mistakes drowning the real ones.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable

from dlpipe.pipelines.doctor import Diagnosis, Finding, copy_findings, imbalance_findings


def diagnose_text(data: str, config_file: str | None = None, sets: Iterable[str] = (),
                  similarity: float = 0.9) -> Diagnosis:
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
    diagnosis = Diagnosis(data=", ".join(files), backbone="", folds=0,
                          class_counts={name: labels.count(i) for i, name in enumerate(names)})
    diagnosis.findings += text_duplicate_findings(rows, texts, labels, names, similarity)
    diagnosis.findings += imbalance_findings(diagnosis.class_counts, diagnosis.data)
    return diagnosis


def quote(text: str, limit: int = 100) -> str:
    return '"' + (text if len(text) <= limit else text[:limit - 1] + "…") + '"'


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
    given = [names[label] for label in labels]
    for group in (g for g in groups.values() if len(g) > 1):
        same |= {(i, j) for i in group for j in group if i < j}
        findings += copy_findings(
            group, given,
            mixed=lambda index, others, classes: Finding(
                rows[index], "conflicting_labels", f"{quote(texts[index])} is {given[index]} here, also at "
                f"{', '.join(rows[j] for j in others)} ({', '.join(classes)})", "keep one copy with the right label"),
            same=lambda index, first: Finding(rows[index], "exact_duplicate", f"{quote(texts[index])} also at "
                                              f"{rows[first]}", "delete this copy"))
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
