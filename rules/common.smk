# Config validation and every helper function of the workflow (rules stay declarative).
import os
import re
from functools import lru_cache
from pathlib import Path

import deepser
from deepser.corpus.manifest import (
    manifest_is_whole,
    manifest_name,
    recorded_sources,
    refresh_manifest,
    shards_with_outputs,
    UnchangedCheck,
)
from deepser.corpus.meta import read_table
from deepser.corpus.summary import distinct_rows
from deepser.database.folds import DEFAULT_FOLD_BY, count_folds, group_labels
from deepser.errors import rerun_recovery
from deepser.workflow.code import STAMP_SUFFIX, library_modules, write_code_stamp
from deepser.workflow.config import (
    augment_config,
    baseline_settings,
    with_baseline_feature_sets,
    check_config,
    feature_spec,
    gain_config,
    needs_corpus_gain,
    resolve_experiments,
    robustness_experiments,
    with_cross_corpus_databases,
    cross_corpus_database,
)
from deepser.workflow.feasibility import (
    fold_problems,
    inner_fold_problems,
    needs_validation_split,
)
from deepser.workflow.schema import load_schema, validate_config
from snakemake.logging import logger
from snakemake.exceptions import IncompleteCheckpointException, WorkflowError

# the schema's checks (one line per problem, defaults filled in), then the cross-references
_config_problems = validate_config(
    config, load_schema(Path(workflow.basedir) / "config/schema.yaml")
) or check_config(config)
if _config_problems:
    raise WorkflowError(
        "invalid config:\n" + "\n".join(f"  {p}" for p in _config_problems)
    )

RESULTS = config.get("results", "results")
CORPORA = config["corpora"]
config["feature_sets"] = with_baseline_feature_sets(
    config
)  # + the baselines' implied set
FEATURE_SETS = config["feature_sets"]
config["databases"] = with_cross_corpus_databases(config)  # + cross-corpus targets
DATABASES = config["databases"]
LIBRARY = Path(deepser.__file__).parent
SCRIPTS = Path(workflow.basedir) / "scripts"
SCRIPT_NAMES = sorted(p.name for p in SCRIPTS.glob("*.py"))


def code(script):
    """A job's code input: the code stamp of its script (rule code_stamp writes it from the
    script and every library module the script can run, found from its imports). Editing any
    of them changes the stamp and re-runs the job; a mere touch does not (Snakemake compares
    content checksums).
    """
    return f"{RESULTS}/code/{script}{STAMP_SUFFIX}"


def stamped_code(wildcards):
    """What a code stamp covers: the script and the library modules it can run."""
    path = SCRIPTS / wildcards.script
    return [str(path)] + [str(p) for p in library_modules(path, LIBRARY)]


def alternatives(names):
    """A wildcard constraint that matches exactly these names."""
    return "|".join(map(re.escape, names))


def meta_threads(wildcards):
    """Threads of a corpus's meta check: one per 2 MB of meta file (about 40,000 rows), up to
    8 (Snakemake lowers it to --cores); 1 while the meta file does not exist yet."""
    try:
        size = Path(CORPORA[wildcards.corpus]["meta"]).stat().st_size
    except OSError:
        return 1
    return min(8, 1 + size // 2_000_000)


def mem_mb(base):
    """Memory that grows with each retry (cluster retries after an out-of-memory kill)."""
    return lambda wildcards, attempt: base * attempt


@lru_cache(maxsize=None)
def _meta_table(path, mtime):
    """The validated meta ``path`` (read while the DAG is built); a damaged one stops the run
    with its name and the recovery (its job's three outputs go together)."""
    try:
        return read_table(path)
    except (OSError, ValueError, KeyError) as exc:
        outputs = [
            str(Path(path).with_name(n))
            for n in ("meta.tsv", "vocab.json", "rejected.tsv")
        ]
        raise WorkflowError(
            f"normalised meta file {path}: unreadable ({' '.join(str(exc).split())}). "
            + rerun_recovery(outputs, "prepares the corpus's meta again (prepare_meta)")
        )


def _shard_table_rows(corpus, shard):
    """(utt_id, audio path) of one shard, from the validated meta (after the checkpoint)."""
    meta = checkpoints.prepare_meta.get(corpus=corpus).output.meta
    table = _meta_table(meta, Path(meta).stat().st_mtime_ns)
    rows = table[table["shard"] == int(shard)]
    return list(zip(rows["utt_id"], rows["audio"]))


@lru_cache(maxsize=None)
def _compared_shards(corpus):
    """The shards of a corpus that a shard job (features, gain statistics) has an output of,
    sorted: only their manifests can decide a re-run, so only theirs are checked against
    their audio files (a shard without outputs runs anyway)."""
    base = Path(RESULTS, "corpora", corpus)
    folders = [*base.glob("features/*"), *base.glob("gain/sr*")]
    return tuple(sorted(shards_with_outputs(folders)))


def _check_manifests(corpus):
    """Start checking which compared shards of a corpus have every audio file in its
    manifest's state (deepser.corpus.manifest; a million files: one stat each, in child
    processes); returns the function that answers for one shard, as soon as its own manifest
    is checked."""
    folder = f"{RESULTS}/corpora/{corpus}/shards"
    shards = _compared_shards(corpus)
    paths = [f"{folder}/{manifest_name(k)}" for k in shards]
    check = UnchangedCheck(paths, min(8, len(os.sched_getaffinity(0))))
    index = {k: i for i, k in enumerate(shards)}
    return lambda shard: check[index[shard]]


# Started now, while the workflow is parsed and planned: the answers are used only once the
# corpus's meta checkpoint is complete (a cluster job checks its own shard instead).
_MANIFEST_CHECKS = {
    corpus: _check_manifests(corpus)
    for corpus in CORPORA
    if not workflow.remote_exec and Path(RESULTS, "corpora", corpus, "shards").is_dir()
}


@lru_cache(maxsize=None)
def _manifest_check(corpus):
    """Whether a compared shard of a corpus has all its audio files in its manifest's state
    (a function of the shard)."""
    checkpoints.prepare_meta.get(corpus=corpus)  # complete: its manifests were checked
    return _MANIFEST_CHECKS.pop(corpus, None) or _check_manifests(corpus)


@lru_cache(maxsize=None)
def _manifest_folder(corpus):
    """The folder of a corpus's shard manifests, once its meta checkpoint is complete (an
    incomplete one raises, and is asked again: exceptions are not cached)."""
    return checkpoints.prepare_meta.get(corpus=corpus).output.shards


@lru_cache(maxsize=None)
def _fresh_manifest(corpus, shard):
    """The manifest of one shard (written by the meta checkpoint), brought up to date with
    its audio files (deepser.corpus.manifest: rewritten only when a file's content changed).
    """
    path = f"{_manifest_folder(corpus)}/{manifest_name(shard)}"
    if not workflow.remote_exec:  # a cluster job checks its own shard only, below
        if int(shard) in _compared_shards(corpus):
            if _manifest_check(corpus)(int(shard)):
                return path
        elif manifest_is_whole(path):
            return path  # nothing extracted to compare with: its jobs run anyway
    features = Path(RESULTS, "corpora", corpus, "features").glob(f"*/shard-{shard}.h5")
    refresh_manifest(
        path,
        recorded=lambda: recorded_sources(sorted(features)),
        rows=lambda: _shard_table_rows(corpus, shard),
    )
    return path


def shard_manifest(wildcards):
    """A shard job's input: its manifest instead of its audio files (one file to examine)."""
    return _fresh_manifest(wildcards.corpus, wildcards.shard)


@lru_cache(maxsize=None)
def extraction_settings(corpus, featureset):
    """What an extraction job takes from the config (spec, gain, on_bad_audio, augment), as
    one params entry: Snakemake evaluates every params function of every job while it plans
    (1,000 shard jobs for a million utterances)."""
    return {
        "spec": feature_spec(config, featureset),
        "gain": gain_config(config, featureset),
        "on_bad_audio": CORPORA[corpus].get("on_bad_audio", "fail"),
        "augment": augment_config(config, featureset),
    }


def gain_input(wildcards):
    if not needs_corpus_gain(config, wildcards.featureset):
        return []
    rate = FEATURE_SETS[wildcards.featureset]["sample_rate"]
    return [f"{RESULTS}/corpora/{wildcards.corpus}/gain/sr{rate}.json"]


def require_meta(corpora):
    """Raise IncompleteCheckpointException until the meta checkpoint of every corpus is
    complete, so that a rule that lists every shard file of ``corpora`` is planned again
    then: Snakemake's first planning pass never sees a checkpoint complete, and a shard job
    planned in that pass (its input function hits the checkpoint) is planned a second time
    after it. Listing the shards only afterwards plans each shard job once (1,000 shard jobs:
    about a third of a dry run's time)."""
    for corpus in corpora:
        checkpoints.prepare_meta.get(corpus=corpus)


def gain_shards(wildcards):
    require_meta([wildcards.corpus])
    n = CORPORA[wildcards.corpus]["n_shards"]
    return expand(
        f"{RESULTS}/corpora/{wildcards.corpus}/gain/sr{wildcards.rate}/shard-{{shard}}.json",
        shard=range(n),
    )


def db_corpora(wildcards):
    return DATABASES[wildcards.database]["corpora"]


def _meta_targets(corpora):
    """The validated meta file of each corpus, and whether all their checkpoints are complete.
    An incomplete one is given as Snakemake's checkpoint target (the exception's targetfile):
    a job that depends on one is planned again once its checkpoint has run, and nothing else
    about it (such as its set of input files) is decided before."""
    metas, complete = [], True
    for corpus in corpora:
        try:
            metas.append(checkpoints.prepare_meta.get(corpus=corpus).output.meta)
        except IncompleteCheckpointException as exc:
            metas.append(exc.targetfile)
            complete = False
    return metas, complete


def db_inputs(wildcards):
    """A database's inputs: its corpora's validated meta (every corpus's checkpoint planned at
    once), then, once they are complete and the folds can be trained, every feature shard
    (listed only then: see require_meta)."""
    db = DATABASES[wildcards.database]
    corpora = db["corpora"]
    metas, complete = _meta_targets(corpora)
    if complete:
        check_folds(wildcards.database)
    base = f"{RESULTS}/corpora"
    return {
        "meta": metas,
        "vocab": [f"{base}/{c}/vocab.json" for c in corpora],
        "rejected": [f"{base}/{c}/rejected.tsv" for c in corpora],
        "shards": (
            [
                f"{base}/{c}/features/{db['feature_set']}/shard-{k}.h5"
                for c in corpora
                for k in range(CORPORA[c]["n_shards"])
            ]
            if complete
            else []
        ),
    }


def db_params(wildcards):
    return [(c, CORPORA[c]["n_shards"]) for c in db_corpora(wildcards)]


def all_databases():
    return expand(f"{RESULTS}/db/{{database}}.h5", database=DATABASES)


EXPERIMENTS = resolve_experiments(config)


def init_model(wildcards):
    """The pretrained model a fine-tuning experiment starts from (its source's final model)."""
    source = EXPERIMENTS[wildcards.experiment].get("init_from")
    return (
        {"init": f"{RESULTS}/experiments/{source}/final/model.keras"} if source else {}
    )


def experiment_db(wildcards):
    return f"{RESULTS}/db/{EXPERIMENTS[wildcards.experiment]['database']}.h5"


def experiment_db_rejected(wildcards):
    return f"{RESULTS}/db/{EXPERIMENTS[wildcards.experiment]['database']}.rejected.tsv"


def _meta_stamps(corpora):
    """(corpus, validated meta path, its mtime) of each corpus (after the checkpoint)."""
    stamps = []
    for corpus in corpora:
        meta = checkpoints.prepare_meta.get(corpus=corpus).output.meta
        stamps.append((corpus, meta, Path(meta).stat().st_mtime_ns))
    return tuple(stamps)


@lru_cache(maxsize=None)
def _distinct_rows(stamps, columns):
    """The distinct rows of ``columns`` in the validated meta files (``stamps``: the cache
    key) with their counts: (corpus, values..., count) tuples, cached next to each meta file
    (deepser.corpus.summary): a million-row meta is a few hundred rows to the fold checks.
    """
    out = []
    for corpus, meta, mtime in stamps:
        read = lambda meta=meta, mtime=mtime: _meta_table(meta, mtime)
        out += [(corpus, *row) for row in distinct_rows(meta, columns, read)]
    return out


def database_n_folds(name):
    """Folds of a database, as the database build decides them: its n_folds, or one per
    group of the validated meta files (read after the prepare_meta checkpoint); 0 without
    folds (fold_by: null)."""
    db = DATABASES[name]
    fold_by = db.get("fold_by", DEFAULT_FOLD_BY)
    if not fold_by:
        return 0

    def groups():
        rows = _distinct_rows(_meta_stamps(db["corpora"]), (fold_by,))
        corpora, values = [r[0] for r in rows], [r[1] for r in rows]
        return group_labels(corpora, values, len(db["corpora"]) > 1)

    return count_folds(db.get("n_folds"), groups)


def _categorical_tasks(db):
    first = list(CORPORA[db["corpora"][0]]["columns"])
    names = [first[t] if isinstance(t, int) else t for t in db["tasks"]]
    categorical = []
    for task in names:
        specs = [CORPORA[c]["columns"][task] for c in db["corpora"]]
        if not any(
            isinstance(s, dict) and s.get("type") == "continuous" for s in specs
        ):
            categorical.append(task)
    return categorical


def _validation_needs(members):
    return any(needs_validation_split(EXPERIMENTS[m]) for m in members)


@lru_cache(maxsize=None)
def _fold_check(name, stamps):
    """(errors, warnings) of database ``name``'s folds and of the inner folds its fusions and
    selections need, from the validated meta files (``stamps``: their mtimes, the cache key).
    """
    db = DATABASES[name]
    fold_by = db.get("fold_by", DEFAULT_FOLD_BY)
    multi = len(db["corpora"]) > 1
    tasks = _categorical_tasks(db)
    has_speaker = all("speaker" in CORPORA[c]["columns"] for c in db["corpora"])
    columns = (fold_by, *(("speaker",) if has_speaker else ()), *tasks)
    rows = _distinct_rows(
        stamps, tuple(dict.fromkeys(columns))
    )  # each row once, counted
    index = {c: 1 + i for i, c in enumerate(dict.fromkeys(columns))}
    corpora = [r[0] for r in rows]
    groups = group_labels(corpora, [r[index[fold_by]] for r in rows], multi)
    speakers = (
        group_labels(corpora, [r[index["speaker"]] for r in rows], multi)
        if has_speaker
        else [""] * len(rows)
    )
    labels = {t: [r[index[t]] for r in rows] for t in tasks}
    weights = [r[-1] for r in rows]
    users = [e for e, exp in EXPERIMENTS.items() if exp["database"] == name]
    where = f"databases.{name}"
    errors, warnings = fold_problems(
        groups,
        labels,
        db.get("n_folds"),
        _validation_needs(users),
        where,
        speakers=speakers,
        weights=weights,
    )
    for kind, entries, key in (
        ("fusions", FUSIONS, "members"),
        ("selections", SELECTIONS, "candidates"),
    ):
        for entry_name, entry in entries.items():
            members = [m for m in entry[key] if EXPERIMENTS[m]["database"] == name]
            if not members or (kind == "fusions" and entry.get("method") == "average"):
                continue
            errors += inner_fold_problems(
                groups,
                db.get("n_folds"),
                entry.get("inner_folds", 3),
                _validation_needs(members),
                f"{kind}.{entry_name} ({where})",
                speakers=speakers,
                weights=weights,
            )
    for warning in warnings:  # once per run (cached)
        logger.warning(f"Warning: {warning}")
    return errors, warnings


def check_folds(name):
    """Stop before any feature of database ``name`` is built when its folds cannot be trained
    (one speaker, more folds than speakers, no validation speakers); warn about classes that
    one speaker or one fold holds alone. Runs once the validated meta files exist."""
    db = DATABASES[name]
    if not db.get("fold_by", DEFAULT_FOLD_BY):
        return
    errors, _ = _fold_check(name, _meta_stamps(db["corpora"]))
    if errors:
        raise WorkflowError(
            "the folds cannot be trained:\n" + "\n".join(f"  {e}" for e in errors)
        )


def fold_files(name):
    """Per-fold outputs of an experiment (an input function)."""

    return lambda wildcards: experiment_fold_paths(wildcards.experiment, name)


def experiment_fold_paths(experiment, name):
    """A per-fold file of every fold of an experiment."""
    n = database_n_folds(EXPERIMENTS[experiment]["database"])
    return expand(
        f"{RESULTS}/experiments/{experiment}/fold-{{fold}}/{name}", fold=range(n)
    )


FUSIONS = config.get("fusions") or {}
SELECTIONS = config.get("selections") or {}


def experiment_baseline(wildcards):
    """The classic baseline's metrics of the experiment's database ([] when it has none)."""
    database = EXPERIMENTS[wildcards.experiment]["database"]
    if baseline_settings(config, database) is None:
        return []
    return f"{RESULTS}/baselines/{database}/metrics.json"


def baseline_shards(wildcards):
    require_meta(DATABASES[wildcards.database]["corpora"])
    settings = baseline_settings(config, wildcards.database)
    return [
        f"{RESULTS}/corpora/{c}/features/{settings['feature_set']}/shard-{k}.h5"
        for c in DATABASES[wildcards.database]["corpora"]
        for k in range(CORPORA[c]["n_shards"])
    ]


def member_files(kind, key, name):
    """Per-fold files of each member (fusion) or candidate (selection), member by member
    (an input function; every member has the same number of folds). ``name`` "inner": the
    inner-fold predictions of the entry's ``inner_folds``."""

    def files(wildcards):
        entry = (FUSIONS if kind == "fusion" else SELECTIONS)[getattr(wildcards, kind)]
        if name == "inner":
            name_ = f"inner-{entry.get('inner_folds', 3)}.csv"
        else:
            name_ = name
        out = []
        for member in entry[key]:
            n = database_n_folds(EXPERIMENTS[member]["database"])
            out += expand(
                f"{RESULTS}/experiments/{member}/fold-{{fold}}/{name_}", fold=range(n)
            )
        return out

    return files


def fusion_inner(wildcards):
    method = FUSIONS[wildcards.fusion].get("method", "average")
    if method == "average":
        return []
    return member_files("fusion", "members", "inner")(wildcards)


def all_experiments():
    results = len(EXPERIMENTS) + len(FUSIONS) + len(SELECTIONS)
    comparison = [f"{RESULTS}/experiments/comparison.html"] if results > 1 else []
    return (
        comparison
        + expand(
            [
                f"{RESULTS}/experiments/{{experiment}}/final/bundle.json",
                f"{RESULTS}/experiments/{{experiment}}/report.html",
            ],
            experiment=EXPERIMENTS,
        )
        + expand(
            [
                f"{RESULTS}/fusions/{{fusion}}/final/bundle.json",
                f"{RESULTS}/fusions/{{fusion}}/report.html",
            ],
            fusion=FUSIONS,
        )
        + expand(
            [
                f"{RESULTS}/selections/{{selection}}/final/bundle.json",
                f"{RESULTS}/selections/{{selection}}/report.html",
            ],
            selection=SELECTIONS,
        )
    )


CROSS_CORPUS = config.get("cross_corpus") or {}
ROBUSTNESS = config["robustness"]
CONDITIONS = list(ROBUSTNESS.get("conditions") or [])
ROBUST_EXPERIMENTS = robustness_experiments(config)


def experiment_metas(wildcards):
    """The validated meta of each corpus of the experiment's database (group columns)."""
    corpora = DATABASES[EXPERIMENTS[wildcards.experiment]["database"]]["corpora"]
    return [f"{RESULTS}/corpora/{c}/meta.tsv" for c in corpora]


def experiment_robustness(wildcards):
    if wildcards.experiment not in ROBUST_EXPERIMENTS:
        return []
    return f"{RESULTS}/experiments/{wildcards.experiment}/robustness.json"


def cross_corpus_of(experiment):
    """The cross-corpus evaluations of an experiment, by name."""
    return [n for n, e in CROSS_CORPUS.items() if e["experiment"] == experiment]


def experiment_cross_corpus(wildcards):
    return [
        f"{RESULTS}/cross_corpus/{n}/metrics.json"
        for n in cross_corpus_of(wildcards.experiment)
    ]


def degraded_databases(wildcards):
    database = EXPERIMENTS[wildcards.experiment]["database"]
    return [f"{RESULTS}/db/degraded/{database}/{c}.h5" for c in CONDITIONS]


def degraded_inputs(wildcards):
    """The clean database and its corpora's validated meta (the features are extracted again)."""
    found = db_inputs(wildcards)
    return {
        "clean": f"{RESULTS}/db/{wildcards.database}.h5",
        "meta": found["meta"],
        "vocab": found["vocab"],
        "rejected": found["rejected"],
    }


def cross_corpus_inputs(wildcards):
    entry = CROSS_CORPUS[wildcards.cross]
    return {
        "db": f"{RESULTS}/db/{cross_corpus_database(config, wildcards.cross)}.h5",
        "models": experiment_fold_paths(entry["experiment"], "model.keras"),
        "trainings": experiment_fold_paths(entry["experiment"], "training.json"),
    }


def model_cards():
    """The model card of every bundle."""
    return (
        expand(
            f"{RESULTS}/experiments/{{experiment}}/final/model_card.md",
            experiment=EXPERIMENTS,
        )
        + expand(f"{RESULTS}/fusions/{{fusion}}/final/model_card.md", fusion=FUSIONS)
        + expand(
            f"{RESULTS}/selections/{{selection}}/final/model_card.md",
            selection=SELECTIONS,
        )
    )


def result_databases():
    """The database of every experiment, fusion and selection (paired comparisons)."""
    found = {e: x["database"] for e, x in EXPERIMENTS.items()}
    for entries, key in ((FUSIONS, "members"), (SELECTIONS, "candidates")):
        for name, entry in entries.items():
            found[name] = EXPERIMENTS[entry[key][0]]["database"]
    return found
