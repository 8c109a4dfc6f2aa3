"""The stages several tasks share: `evaluate` (classifiers) and `export` (every task).

Each task's own stages live in its package (`dlpipe.pipelines.<task>`), which lists the stages it runs.
"""
