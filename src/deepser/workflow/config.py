"""Cross-reference checks of the workflow config (the JSON schema checks each entry alone)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deepser.corpus.degrade import condition_problems
from deepser.corpus.gain import gain_problems
from deepser.database.folds import DEFAULT_FOLD_BY
from deepser.features.augment import waveform_config
from deepser.features.registry import UTTERANCE_TYPES, resolve_spec, spec_problems


def column_names(corpus: Mapping[str, Any]) -> list[str]:
    """The label columns a corpus keeps, in config order."""
    return list(corpus["columns"])


def feature_spec(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The explicit spec of feature set ``name``."""
    return resolve_spec(config["feature_sets"][name])


def gain_config(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The gain config of feature set ``name`` (method ``none`` when absent)."""
    return dict(config["feature_sets"][name].get("gain") or {"method": "none"})


def augment_config(config: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The waveform augmentation of feature set ``name`` with defaults (None: off)."""
    return waveform_config(config["feature_sets"][name].get("augment"))


def resolve_experiments(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Experiments with inherited settings: a fine-tuning experiment (``init_from``) without
    its own ``model`` uses its source's architecture and sizes (so the weights fit)."""
    experiments = {k: dict(v) for k, v in (config.get("experiments") or {}).items()}
    for exp in experiments.values():
        source = experiments.get(exp.get("init_from", ""))
        if source is not None and "model" not in exp:
            exp["model"] = dict(source.get("model", {}))
    return experiments


def _experiment_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    experiments = config.get("experiments") or {}
    for name, exp in experiments.items():
        where = f"experiments.{name}"
        source = exp.get("init_from")
        if source is not None:
            if source not in experiments or source == name:
                problems.append(
                    f"{where}.init_from: {source!r} is not another experiment "
                    f"(known: {', '.join(k for k in experiments if k != name)})"
                )
            else:
                seen, cur = {name}, source
                while cur is not None and cur not in seen:
                    seen.add(cur)
                    cur = experiments.get(cur, {}).get("init_from")
                if cur is not None:
                    problems.append(f"{where}.init_from: a cycle of init_from through {cur!r}")
        elif exp.get("freeze"):
            problems.append(f"{where}.freeze: only meaningful with init_from")
        tasks = exp.get("tasks")
        for aux in exp.get("auxiliary", []):
            if tasks is not None and aux not in tasks:
                problems.append(f"{where}.auxiliary: {aux!r} is not one of its tasks")
        if tasks is not None and set(exp.get("auxiliary", [])) >= set(tasks):
            problems.append(f"{where}.auxiliary: every task is auxiliary; the bundle needs one")
        training = exp.get("training", {})
        if training.get("sampling", "none") != "none" and training.get("class_weights", True):
            problems.append(
                f"{where}.training: sampling {training['sampling']!r} already balances the "
                "classes; set class_weights: false (or sampling: none)"
            )
        alpha = training.get("focal_alpha")
        if alpha is not None and training.get("loss", "crossentropy") != "focal":
            problems.append(f"{where}.training.focal_alpha: set loss: focal to use it")
    return problems


BASELINE_FEATURE_SET = "baseline_functionals"


def baseline_settings(config: Mapping[str, Any], database: str) -> dict[str, Any] | None:
    """The classic baseline of ``database`` with its feature set resolved (None: off, or no
    folds). The feature set is the configured one, else the database's own when it gives one
    vector per utterance, else the config's first (not augmented) ``functionals`` set at the
    same sample rate, else :data:`BASELINE_FEATURE_SET` (see :func:`with_baseline_feature_sets`).
    The corpora's shards of that set are extracted (and cached) like any other."""
    db = config["databases"][database]
    entry = db.get("baseline", {})
    if entry is False or not db.get("fold_by", DEFAULT_FOLD_BY):
        return None
    entry = dict(entry or {})
    if "feature_set" not in entry:
        fsets = config["feature_sets"]
        own = fsets[db["feature_set"]]
        same_rate = [
            name
            for name, fset in fsets.items()
            if fset.get("type") == "functionals"
            and fset.get("sample_rate") == own.get("sample_rate")
            and not fset.get("augment")
            and name != BASELINE_FEATURE_SET
        ]
        if own.get("type") in UTTERANCE_TYPES:
            entry["feature_set"] = db["feature_set"]
        else:  # another functionals set of the config (cached once), else the implied one
            entry["feature_set"] = same_rate[0] if same_rate else BASELINE_FEATURE_SET
    return entry


def with_baseline_feature_sets(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's feature sets plus, when a baseline needs it, the implied default
    ``functionals`` set (the sample rate and gain of the first database that uses it)."""
    fsets = dict(config["feature_sets"])
    for name in config["databases"]:
        settings = baseline_settings(config, name)
        implied = settings and settings["feature_set"] == BASELINE_FEATURE_SET
        if implied and BASELINE_FEATURE_SET not in fsets:
            own = fsets[config["databases"][name]["feature_set"]]
            fsets[BASELINE_FEATURE_SET] = {
                "type": "functionals",
                "sample_rate": own["sample_rate"],
                "gain": dict(own.get("gain") or {"method": "none"}),
            }
    return fsets


def _combination_problems(config: Mapping[str, Any]) -> list[str]:
    """Fusions and selections: known experiments, distinct names, the same folds."""
    problems = []
    experiments = config.get("experiments") or {}
    databases = config["databases"]
    seen = set(experiments)
    for kind, key in (("fusions", "members"), ("selections", "candidates")):
        for name, entry in (config.get(kind) or {}).items():
            where = f"{kind}.{name}"
            if name in seen:
                problems.append(f"{where}: the name is already used by another result")
            seen.add(name)
            unknown = [m for m in entry[key] if m not in experiments]
            if unknown:
                problems.append(
                    f"{where}.{key}: unknown experiment(s) {', '.join(unknown)} "
                    f"(known: {', '.join(experiments)})"
                )
                continue
            folds = set()
            for m in entry[key]:
                db = databases.get(experiments[m]["database"], {})
                folds.add(
                    (
                        tuple(db.get("corpora", [])),
                        db.get("fold_by", DEFAULT_FOLD_BY),
                        db.get("n_folds"),
                    )
                )
            if len(folds) > 1:
                problems.append(
                    f"{where}.{key}: the experiments use databases with different corpora or "
                    "folds (corpora, fold_by and n_folds must be the same)"
                )
            if any(db[1] is None for db in folds):
                problems.append(f"{where}: the databases have no folds (fold_by: null)")
    return problems


def cross_corpus_database(config: Mapping[str, Any], name: str) -> str:
    """The implied database of cross-corpus evaluation ``name``: the other corpus with the
    experiment's database's feature set and windows, no folds (shared by entries that pair the
    same database and corpus)."""
    entry = config["cross_corpus"][name]
    source = config["experiments"][entry["experiment"]]["database"]
    return f"{source}-on-{entry['corpus']}"


def with_cross_corpus_databases(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's databases plus the implied databases of its cross-corpus evaluations."""
    databases = dict(config["databases"])
    for name, entry in (config.get("cross_corpus") or {}).items():
        implied = cross_corpus_database(config, name)
        source = databases[config["experiments"][entry["experiment"]]["database"]]
        tasks = list(databases.get(implied, {}).get("tasks", []))
        tasks += [t for t in entry["labels"] if t not in tasks]
        databases[implied] = {
            "corpora": [entry["corpus"]],
            "feature_set": source["feature_set"],
            "c_len": source["c_len"],
            "max_steps": source["max_steps"],
            "layout": source.get("layout", "2d"),
            "tasks": tasks,
            "fold_by": None,
            "n_folds": None,
            "baseline": False,
        }
    return databases


def robustness_experiments(config: Mapping[str, Any]) -> list[str]:
    """The experiments that get a robustness table (none without conditions)."""
    robustness = config.get("robustness") or {}
    if not robustness.get("conditions"):
        return []
    chosen = robustness.get("experiments")
    experiments = config.get("experiments") or {}
    return [e for e in experiments if chosen is None or e in chosen]


def _continuous(spec: Any) -> bool:
    return isinstance(spec, Mapping) and spec.get("type") == "continuous"


def _evaluation_problems(config: Mapping[str, Any]) -> list[str]:
    """Robustness conditions and experiments; cross-corpus experiments, corpora and tasks."""
    problems = []
    robustness = config.get("robustness") or {}
    problems += [
        p if p.startswith("robustness") else f"robustness.conditions: {p}"
        for p in condition_problems(robustness.get("conditions") or [])
    ]
    experiments = config.get("experiments") or {}
    unknown = [e for e in robustness.get("experiments") or [] if e not in experiments]
    if unknown:
        problems.append(f"robustness.experiments: unknown experiment(s) {', '.join(unknown)}")
    databases, corpora = config["databases"], config["corpora"]
    taken = set(databases)
    for name, entry in (config.get("cross_corpus") or {}).items():
        where = f"cross_corpus.{name}"
        exp = experiments.get(entry["experiment"])
        if exp is None:
            problems.append(
                f"{where}.experiment: unknown experiment {entry['experiment']!r} "
                f"(known: {', '.join(experiments) or 'none'})"
            )
            continue
        if entry["corpus"] not in corpora:
            problems.append(
                f"{where}.corpus: unknown corpus {entry['corpus']!r} (known: {', '.join(corpora)})"
            )
            continue
        source = databases[exp["database"]]
        if entry["corpus"] in source["corpora"]:
            problems.append(
                f"{where}.corpus: {entry['corpus']!r} is a corpus the experiment trains on; "
                "cross-corpus evaluation needs another one"
            )
        if not source.get("fold_by", DEFAULT_FOLD_BY):
            problems.append(f"{where}: the experiment's database has no folds (no fold models)")
        first = column_names(corpora[source["corpora"][0]])
        db_tasks = [first[t] if isinstance(t, int) else t for t in source["tasks"]]
        trained = [t for t in exp.get("tasks") or db_tasks if t not in exp.get("auxiliary", [])]
        for task in entry["labels"]:
            spec = corpora[entry["corpus"]]["columns"].get(task)
            ours = corpora[source["corpora"][0]]["columns"].get(task)
            if spec is None:
                problems.append(
                    f"{where}.labels.{task}: corpus {entry['corpus']!r} has no column {task!r}"
                )
            elif task not in trained:
                problems.append(
                    f"{where}.labels.{task}: not a task of the experiment's final model "
                    f"({', '.join(map(str, trained))})"
                )
            elif _continuous(spec) or _continuous(ours):
                problems.append(f"{where}.labels.{task}: a continuous label has no classes to map")
        implied = cross_corpus_database(config, name)
        if implied in taken:
            problems.append(f"{where}: its implied database name {implied!r} is already used")
    return problems


def needs_corpus_gain(config: Mapping[str, Any], name: str) -> bool:
    """Whether feature set ``name`` normalises with min/max statistics of the corpus."""
    gain = gain_config(config, name)
    return gain["method"] == "minmax" and gain.get("source", "corpus") == "corpus"


def check_config(config: Mapping[str, Any]) -> list[str]:
    """Return every problem that spans entries: unknown references, impossible parameters."""
    problems: list[str] = []
    corpora, fsets = config["corpora"], config["feature_sets"]
    for name, fset in fsets.items():
        try:
            spec = resolve_spec(fset)
            augment_config(config, name)
        except ValueError as exc:
            problems.append(f"feature_sets.{name}: {exc}")
        else:  # impossible combinations: empty mel filters, a hop past the window, ...
            problems += [f"feature_sets.{name}: {p}" for p in spec_problems(spec)]
        problems += [
            f"feature_sets.{name}.gain: {p}" for p in gain_problems(fset.get("gain") or {})
        ]
    for name in corpora:
        if "/" in name or not name:
            problems.append(f"corpora.{name}: a corpus name cannot contain '/'")
    for name, db in config["databases"].items():
        where = f"databases.{name}"
        unknown = [c for c in db["corpora"] if c not in corpora]
        if unknown:
            problems.append(
                f"{where}.corpora: unknown corpus {', '.join(unknown)} "
                f"(known: {', '.join(corpora)})"
            )
            continue
        if db["feature_set"] not in fsets:
            problems.append(
                f"{where}.feature_set: unknown feature set {db['feature_set']!r} "
                f"(known: {', '.join(fsets)})"
            )
        if db["c_len"] > db["max_steps"]:
            problems.append(
                f"{where}: c_len ({db['c_len']}) is larger than max_steps ({db['max_steps']})"
            )
        ftype = fsets.get(db["feature_set"], {}).get("type")
        if ftype in UTTERANCE_TYPES and (db["c_len"], db["max_steps"]) != (1, 1):
            problems.append(
                f"{where}: functionals give one vector per utterance; set c_len: 1 and "
                f"max_steps: 1 (not {db['c_len']} and {db['max_steps']})"
            )
        first = column_names(corpora[db["corpora"][0]])
        for ref in db["tasks"]:
            if isinstance(ref, int) and not 0 <= ref < len(first):
                problems.append(
                    f"{where}.tasks: index {ref} out of range (columns: {', '.join(first)})"
                )
            task = first[ref] if isinstance(ref, int) and 0 <= ref < len(first) else ref
            for cname in db["corpora"]:
                if isinstance(task, str) and task not in corpora[cname]["columns"]:
                    problems.append(f"{where}.tasks: corpus {cname!r} has no column {task!r}")
        fold_by = db.get("fold_by", DEFAULT_FOLD_BY)
        for cname in db["corpora"]:
            if fold_by and fold_by not in corpora[cname]["columns"]:
                problems.append(
                    f"{where}.fold_by: corpus {cname!r} has no column {fold_by!r} "
                    f"(add it under corpora.{cname}.columns)"
                )
    # the baselines of the databases whose references hold (the others are reported above)
    known = {
        name: db
        for name, db in config["databases"].items()
        if db["feature_set"] in fsets and all(c in corpora for c in db["corpora"])
    }
    checked = {**config, "databases": known}
    implied = with_baseline_feature_sets(checked)
    if BASELINE_FEATURE_SET in implied and BASELINE_FEATURE_SET not in fsets:
        user = next(
            n
            for n in known
            if (baseline_settings(checked, n) or {}).get("feature_set") == BASELINE_FEATURE_SET
        )
        try:
            found = spec_problems(resolve_spec(implied[BASELINE_FEATURE_SET]))
        except ValueError as exc:
            found = [str(exc)]
        problems += [
            f"databases.{user}.baseline: the implied feature set {BASELINE_FEATURE_SET!r}: {p} "
            "(define a functionals feature set and name it in baseline.feature_set)"
            for p in found
        ]
    for name in known:
        settings = baseline_settings(checked, name)
        if settings is None:
            continue
        fset = implied.get(settings["feature_set"])
        where = f"databases.{name}.baseline.feature_set"
        if fset is None:
            problems.append(f"{where}: unknown feature set {settings['feature_set']!r}")
        elif fset.get("type") not in UTTERANCE_TYPES:
            problems.append(
                f"{where}: {settings['feature_set']!r} is not a functionals or opensmile set"
            )
    for name, exp in (config.get("experiments") or {}).items():
        if exp.get("database") not in config["databases"]:
            problems.append(
                f"experiments.{name}.database: unknown database {exp.get('database')!r} "
                f"(known: {', '.join(config['databases'])})"
            )
    if problems:  # the checks below assume known references
        return problems
    for name, exp in (config.get("experiments") or {}).items():
        db = config["databases"][exp["database"]]
        first = column_names(corpora[db["corpora"][0]])
        tasks = [first[t] if isinstance(t, int) and 0 <= t < len(first) else t for t in db["tasks"]]
        known = f"(database {exp['database']!r} has {', '.join(map(str, tasks))})"
        unknown = [t for t in exp.get("tasks") or {} if t not in tasks]
        if unknown:
            problems.append(
                f"experiments.{name}.tasks: not a task of its database: "
                f"{', '.join(unknown)} {known}"
            )
        if exp.get("monitor") is not None and exp["monitor"] not in tasks:
            problems.append(
                f"experiments.{name}.monitor: {exp['monitor']!r} is not a task of its database "
                f"{known}"
            )
    if problems:
        return problems
    return (
        _experiment_problems(config) + _combination_problems(config) + _evaluation_problems(config)
    )
