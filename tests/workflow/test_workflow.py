"""The real workflow on a small demo corpus, up to the databases, and its incremental re-runs
(up to the models: a changed hyper-parameter re-trains only its experiment)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from deepser.corpus.audio import load_audio
from deepser.corpus.manifest import file_digest, manifest_is_whole, read_sources
from deepser.database.windows import cut_windows
from deepser.features.registry import extract, resolve_spec

from ..helpers import CONFIG as EXPERIMENT_CONFIG
from ..helpers import EXPERIMENT, REPO, planned, planned_wildcards, run_workflow, tone, write_wav

pytestmark = pytest.mark.slow

CONFIG = {
    "results": "results",
    "demo_corpus": {"dir": "data/demo", "seed": 3, "n_speakers": 4, "utterances_per_emotion": 2},
    "corpora": {
        "demo": {
            "meta": "data/demo/meta.tsv",
            "columns": {
                "emotion": "emotion",
                "speaker": "speaker",
                "arousal": {"column": "arousal", "classes": ["low", "mid", "high"]},
                "arousal_score": {"column": "arousal_score", "type": "continuous"},
            },
            "n_shards": 3,
        },
        # the same files as a second corpus: aggregation renames speakers per corpus
        "again": {
            "meta": "data/demo/meta.tsv",
            "columns": {"emotion": "emotion", "speaker": "speaker"},
            "n_shards": 2,
        },
    },
    "feature_sets": {
        "logmel": {
            "type": "logmel",
            "sample_rate": 16000,
            "win": "25ms",
            "hop": "10ms",
            "n_mels": 24,
        },
    },
    "databases": {
        "small": {
            "corpora": ["demo"],
            "feature_set": "logmel",
            "c_len": 10,
            "max_steps": 150,
            "tasks": ["emotion", "arousal_score"],
            "fold_by": "speaker",
            "n_folds": None,
        },
        "both": {
            "corpora": ["demo", "again"],
            "feature_set": "logmel",
            "c_len": 5,
            "max_steps": 100,
            "layout": "3d",
            "tasks": [0],
            "n_folds": 3,
        },
    },
}


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """A private copy of the deepser package for the workflow of `workdir` (via PYTHONPATH):
    the tests edit its "library code" without touching the repository."""
    root = tmp_path_factory.mktemp("library")
    shutil.copytree(
        REPO / "src/deepser", root / "deepser", ignore=shutil.ignore_patterns("__pycache__")
    )
    return root


@pytest.fixture(autouse=True)
def _library_for_workdir(request, monkeypatch) -> None:
    if "workdir" in request.fixturenames:
        monkeypatch.setenv("PYTHONPATH", str(request.getfixturevalue("library")))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, library: Path) -> Path:
    work = tmp_path_factory.mktemp("wf")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(library))
        run_workflow(work, CONFIG)
    return work


def test_databases_are_complete_and_speaker_independent(workdir: Path) -> None:
    meta = pd.read_csv(workdir / "results/corpora/demo/meta.tsv", sep="\t", dtype=str)
    assert len(meta) == 4 * 4 * 2
    with h5py.File(workdir / "results/db/small.h5") as h5:
        attrs = {k: json.loads(v) for k, v in h5.attrs.items()}
        utt = list(h5["utt_id"].asstr())
        speakers = np.array(list(h5["speaker"].asstr()))
        assert sorted(utt) == sorted(meta["utt_id"])  # every utterance exactly once
        starts, ends = h5["start_indice"][()], h5["end_indice"][()]
        assert len(starts) == 4 and starts[0] == 0 and ends[-1] == len(utt)
        fold_speakers = [set(speakers[s:e]) for s, e in zip(starts, ends, strict=True)]
        assert all(len(s) == 1 for s in fold_speakers)  # leave-one-speaker-out
        assert len(set.union(*fold_speakers)) == 4
        assert h5["feat"].shape == (32, 15, 1, 10, 24)
        assert [t["name"] for t in attrs["tasks"]] == ["emotion", "arousal_score"]
        classes = attrs["tasks"][0]["classes"]
        # labels match the meta, and features equal a direct computation from the audio
        row = meta.set_index("utt_id").loc[utt[5]]
        assert classes[int(h5["label"][5, 0])] == row["emotion"]
        assert h5["label"][5, 1] == pytest.approx(float(row["arousal_score"]))
        spec = resolve_spec(CONFIG["feature_sets"]["logmel"])
        assert attrs["feature_spec"] == spec
        direct = extract(load_audio(workdir / row["audio"], 16000), spec)
        windows, n_valid = cut_windows(direct, 10, 150)
        assert h5["n_valid"][5] == n_valid
        # to float32 rounding: the job ran BLAS on one thread (Snakemake sets
        # OPENBLAS_NUM_THREADS=threads), this process may use several (another summation order)
        np.testing.assert_allclose(h5["feat"][5][:, 0], windows, rtol=1e-6, atol=1e-4)
    with h5py.File(workdir / "results/db/both.h5") as h5:
        assert h5["feat"].shape == (64, 1, 20, 5, 24)
        speakers = np.array(list(h5["speaker"].asstr()))
        assert {s.split("/")[0] for s in speakers} == {"demo", "again"}
        starts, ends = h5["start_indice"][()], h5["end_indice"][()]
        groups = [set(speakers[s:e]) for s, e in zip(starts, ends, strict=True)]
        assert len(groups) == 3 and sum(len(g) for g in groups) == 8  # no (corpus, speaker) twice
    logs = list((workdir / "results/logs").rglob("*.log"))
    assert len(logs) >= 1 + 2 + 5 + 2 and all(p.stat().st_size > 0 for p in logs)


def test_dry_run_after_a_full_run_does_nothing(workdir: Path) -> None:
    assert planned(run_workflow(workdir, CONFIG, "-n")) == {}


def test_the_workflow_runs_the_library_copy(workdir: Path, library: Path) -> None:
    summary = run_workflow(workdir, CONFIG, "--detailed-summary").stdout
    assert str(library / "deepser/database/windows.py") in summary
    assert str(REPO / "src/deepser") not in summary


def test_touching_files_without_change_reruns_nothing(workdir: Path, library: Path) -> None:
    wav = next((workdir / "data/demo/wav").rglob("*.wav"))
    wav.touch()
    (workdir / "data/demo/meta.tsv").touch()
    for module in ("features/registry.py", "corpus/meta.py", "database/windows.py"):
        (library / "deepser" / module).touch()
    (REPO / "scripts/extract_features.py").touch()
    assert planned(run_workflow(workdir, CONFIG, "-n")) == {}


def test_editing_library_code_reruns_the_rules_using_it(workdir: Path, library: Path) -> None:
    def edited(module: str) -> dict[str, int]:
        path = library / "deepser" / module
        original = path.read_bytes()
        try:
            path.write_bytes(original + b"\n# an edit\n")
            return planned(run_workflow(workdir, CONFIG, "-n"))
        finally:
            path.write_bytes(original)  # same content again: nothing to re-run

    # the windows: only build_database uses them (both databases; its code stamp first)
    assert edited("database/windows.py") == {"code_stamp": 1, "build_database": 2, "all": 1}
    # the feature registry: every shard of both corpora, and the databases made from them
    assert edited("features/registry.py") == {
        "code_stamp": 1,
        "extract_features": 5,
        "build_database": 2,
        "all": 1,
    }
    # the meta reader: the checkpoint, then (its output unchanged, but rewritten) what follows
    assert edited("corpus/meta.py")["prepare_meta"] == 2
    assert planned(run_workflow(workdir, CONFIG, "-n")) == {}


def test_changed_wav_reextracts_only_its_shard(workdir: Path) -> None:
    meta = pd.read_csv(workdir / "results/corpora/demo/meta.tsv", sep="\t", dtype=str)
    row = meta.iloc[7]
    shard_dir = workdir / "results/corpora/demo/features/logmel"
    before = {p.name: p.stat().st_mtime_ns for p in shard_dir.glob("*.h5")}
    y, sr = sf.read(workdir / row["audio"], dtype="float32")
    sf.write(workdir / row["audio"], y * 0.5, sr, subtype="PCM_16")
    # one shard of each corpus holding the file, and the two databases
    jobs = planned(run_workflow(workdir, CONFIG, "-n"))
    assert jobs == {"extract_features": 2, "build_database": 2, "all": 1}
    run_workflow(workdir, CONFIG)
    after = {p.name: p.stat().st_mtime_ns for p in shard_dir.glob("*.h5")}
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {f"shard-{row['shard']}.h5"}
    assert planned(run_workflow(workdir, CONFIG, "-n")) == {}


def test_large_audio_files_rerun_on_content_not_on_touch(workdir: Path) -> None:
    """The shard manifests decide by content for files of any size (Snakemake's own input
    checksums stop at 1 MB, above which a touch would re-run)."""
    meta = pd.read_csv(workdir / "results/corpora/demo/meta.tsv", sep="\t", dtype=str)
    row = meta.iloc[11]
    wav = workdir / row["audio"]
    y, sr = sf.read(wav, dtype="float32")
    sf.write(wav, np.tile(y, int(np.ceil(40 * sr / len(y)))), sr, subtype="PCM_16")
    assert wav.stat().st_size > 1_000_000
    jobs = planned(run_workflow(workdir, CONFIG, "-n"))
    assert jobs == {"extract_features": 2, "build_database": 2, "all": 1}
    run_workflow(workdir, CONFIG)
    manifest = workdir / f"results/corpora/demo/shards/shard-{row['shard']}.tsv"
    before = manifest.read_bytes()
    stat = wav.stat()
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a touch
    assert planned(run_workflow(workdir, CONFIG, "-n")) == {}
    assert manifest.read_bytes() == before
    data = bytearray(wav.read_bytes())
    data[-2:] = b"\x11\x22"  # the same size, one sample changed
    wav.write_bytes(bytes(data))
    proc = run_workflow(workdir, CONFIG, "-n")
    assert planned(proc) == {"extract_features": 2, "build_database": 2, "all": 1}
    assert set(planned_wildcards(proc)) >= {f"corpus=demo, featureset=logmel, shard={row['shard']}"}
    run_workflow(workdir, CONFIG)
    assert planned(run_workflow(workdir, CONFIG, "-n")) == {}


def test_a_fresh_shard_is_planned_on_its_manifest_alone(tmp_path: Path) -> None:
    """Until a shard is extracted its files are not compared with its manifest (its jobs run
    anyway): an edit made after the meta stage is extracted, then counts as the extracted
    content (no second extraction); a damaged manifest of a fresh shard is rebuilt."""
    db = "results/db/small.h5"
    run_workflow(tmp_path, CONFIG, "results/corpora/demo/meta.tsv")
    meta = pd.read_csv(tmp_path / "results/corpora/demo/meta.tsv", sep="\t", dtype=str)
    row = meta.iloc[5]
    shards = tmp_path / "results/corpora/demo/shards"
    manifest = shards / f"shard-{row['shard']}.tsv"
    before = manifest.read_bytes()
    wav = tmp_path / row["audio"]
    y, sr = sf.read(wav, dtype="float32")
    sf.write(wav, np.concatenate([y, y]) * 0.5, sr, subtype="PCM_16")  # other content and size
    other = shards / f"shard-{(int(row['shard']) + 1) % 3}.tsv"
    other.write_bytes(other.read_bytes()[:-5])  # cut inside its last row
    assert planned(run_workflow(tmp_path, CONFIG, db, "-n"))["extract_features"] == 3
    assert manifest.read_bytes() == before  # not compared, not rewritten
    assert manifest_is_whole(other)  # rebuilt from the validated meta
    run_workflow(tmp_path, CONFIG, db)
    features = tmp_path / f"results/corpora/demo/features/logmel/shard-{row['shard']}.h5"
    assert read_sources(features)[row["utt_id"]].digest == file_digest(wav)
    assert planned(run_workflow(tmp_path, CONFIG, db, "-n")) == {}
    assert manifest.read_bytes() == before


def test_feature_parameter_change_reruns_that_feature_set(workdir: Path) -> None:
    config = copy.deepcopy(CONFIG)
    config["feature_sets"]["logmel"]["n_mels"] = 32
    jobs = planned(run_workflow(workdir, config, "-n"))
    assert jobs == {"extract_features": 5, "build_database": 2, "all": 1}
    config = copy.deepcopy(CONFIG)
    config["databases"]["small"]["c_len"] = 5
    assert planned(run_workflow(workdir, config, "-n")) == {"build_database": 1, "all": 1}


def test_config_typo_fails_naming_the_key(tmp_path: Path) -> None:
    config = copy.deepcopy(CONFIG)
    config["feature_sets"]["logmel"]["n_mel"] = 40
    proc = run_workflow(tmp_path, config, "-n", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr  # a dry run logs to stdout
    assert "feature_sets.logmel: unknown key 'n_mel' (did you mean 'n_mels'?)" in out
    config = copy.deepcopy(CONFIG)
    config["databases"]["small"]["corpora"] = ["demo", "nope"]
    config["databases"]["small"]["tasks"] = ["emotion", "valence"]
    proc = run_workflow(tmp_path, config, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "unknown corpus nope" in out


def bad_audio_corpus(root: Path) -> dict:
    """Four good files, one corrupt, one shorter than an analysis window."""
    lines = ["path\temotion\tspeaker"]
    for i in range(4):
        write_wav(root / f"good{i}.wav", tone(1.0, seed=i))
        lines.append(f"good{i}.wav\t{'ab'[i % 2]}\ts{i % 2}")
    (root / "corrupt.wav").write_bytes(b"RIFF0000WAVEjunk")
    write_wav(root / "tiny.wav", tone(0.01))  # 160 samples < one 25 ms window
    lines += ["corrupt.wav\ta\ts0", "tiny.wav\tb\ts1"]
    (root / "meta.tsv").write_text("\n".join(lines) + "\n")
    config = copy.deepcopy(CONFIG)
    del config["demo_corpus"]
    config["corpora"] = {
        "bad": {
            "meta": "corpus/meta.tsv",
            "n_shards": 1,
            "columns": {"emotion": "emotion", "speaker": "speaker"},
        }
    }
    config["databases"] = {
        "bad": {
            "corpora": ["bad"],
            "feature_set": "logmel",
            "c_len": 10,
            "max_steps": 100,
            "tasks": ["emotion"],
        }
    }
    return config


def test_bad_audio_fails_naming_files_or_is_skipped_and_listed(tmp_path: Path) -> None:
    config = bad_audio_corpus(tmp_path / "corpus")
    proc = run_workflow(tmp_path, config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "corrupt.wav" in out and "unreadable audio" in out
    config["corpora"]["bad"]["on_bad_audio"] = "skip"
    run_workflow(tmp_path, config)
    rejected = pd.read_csv(tmp_path / "results/db/bad.rejected.tsv", sep="\t")
    assert sorted(rejected["utt_id"]) == ["corrupt", "tiny"]
    assert set(rejected["stage"]) == {"meta", "features"}
    with h5py.File(tmp_path / "results/db/bad.h5") as h5:
        assert sorted(h5["utt_id"].asstr()) == [f"good{i}" for i in range(4)]


@pytest.fixture(scope="module")
def minmax(tmp_path_factory) -> Path:
    """A run with corpus min-max gain: per-shard gain statistics, merged, applied."""
    tmp_path = tmp_path_factory.mktemp("minmax")
    root = tmp_path / "corpus"
    lines = ["path\temotion\tspeaker"]
    for i in range(6):
        write_wav(root / f"u{i}.wav", tone(0.5, freq=150 + 30 * i, seed=i) * (0.3 + 0.1 * i))
        lines.append(f"u{i}.wav\t{'ab'[i % 2]}\ts{i % 3}")
    (root / "meta.tsv").write_text("\n".join(lines) + "\n")
    config = {
        "corpora": {
            "c": {
                "meta": "corpus/meta.tsv",
                "n_shards": 3,
                "columns": {"emotion": "emotion", "speaker": "speaker"},
            }
        },
        "feature_sets": {
            "mel": {
                "type": "mel",
                "sample_rate": 16000,
                "gain": {"method": "minmax", "source": "corpus"},
            }
        },
        "databases": {
            "d": {
                "corpora": ["c"],
                "feature_set": "mel",
                "c_len": 4,
                "max_steps": 20,
                "tasks": ["emotion"],
            }
        },
    }
    run_workflow(tmp_path, config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_corpus_minmax_gain_is_merged_from_shards_and_applied(minmax: Path) -> None:
    tmp_path, root = minmax, minmax / "corpus"
    config = json.loads((tmp_path / "config.json").read_text())
    gain = json.loads((tmp_path / "results/corpora/c/gain/sr16000.json").read_text())
    signals = [load_audio(root / f"u{i}.wav", 16000) for i in range(6)]
    assert gain["min"] == pytest.approx(min(float(y.min()) for y in signals))
    assert gain["max"] == pytest.approx(max(float(y.max()) for y in signals))
    assert (
        gain["n_utterances"] == 6
        and len(list((tmp_path / "results/corpora/c/gain/sr16000").glob("shard-*.json"))) == 3
    )
    from deepser.corpus.gain import apply_gain, resolve_gain
    from deepser.features.shards import FeatureShard

    resolved = resolve_gain({"method": "minmax", "source": "corpus"}, gain)
    spec = resolve_spec(config["feature_sets"]["mel"])
    meta = pd.read_csv(tmp_path / "results/corpora/c/meta.tsv", sep="\t", dtype=str)
    row = meta.iloc[0]
    path = tmp_path / f"results/corpora/c/features/mel/shard-{row['shard']}.h5"
    with FeatureShard(path) as shard:
        assert shard.attrs["gain"] == resolved
        expected = extract(apply_gain(load_audio(root / "u0.wav", 16000), resolved), spec)
        np.testing.assert_allclose(shard[row["utt_id"]], expected, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# up to the models: two experiments on one database (a copy of the shared reference run, which
# trained "exp", plus a second experiment "other")

OTHER = copy.deepcopy(EXPERIMENT)
OTHER["model"]["rnn_units"] = 4
OTHER["training"]["epochs"] = 1
EXPERIMENT_JOBS = {
    "train_fold": 2,
    "evaluate_fold": 2,
    "summarize": 1,
    "train_final": 1,
    "bundle": 1,
    "model_card": 1,
}


def with_experiments(**changes) -> dict:
    config = copy.deepcopy(EXPERIMENT_CONFIG)
    config["experiments"]["other"] = copy.deepcopy(OTHER)
    for path, value in changes.items():
        *keys, last = path.split("__")
        entry = config
        for key in keys:
            entry = entry[key]
        entry[last] = value
    return config


@pytest.fixture(scope="module")
def experiments(tmp_path_factory, reference: Path) -> Path:
    work = tmp_path_factory.mktemp("experiments")
    shutil.copytree(reference, work, dirs_exist_ok=True)
    # adding an experiment trains only it (and the comparison page of the two, whose rule
    # first ran here: the code stamp of its script too)
    proc = run_workflow(work, with_experiments())
    assert planned(proc) == {
        **EXPERIMENT_JOBS,
        "code_stamp": 1,
        "compare_experiments": 1,
        "all": 1,
    }
    assert set(planned_wildcards(proc)) == {
        "experiment=other, fold=0",
        "experiment=other, fold=1",
        "experiment=other",
        "script=compare_experiments.py",
    }
    return work


def test_after_a_full_run_a_dry_run_does_nothing(experiments: Path) -> None:
    assert planned(run_workflow(experiments, with_experiments(), "-n")) == {}


def test_experiment_grid_is_compared(experiments: Path) -> None:
    page = (experiments / "results/experiments/comparison.html").read_text()
    assert "exp" in page and "other" in page and "data:image/png;base64," in page
    for name in ("exp", "other"):  # the databases and features are shared, not recomputed
        assert (experiments / f"results/experiments/{name}/final/bundle.json").is_file()
    assert len(list((experiments / "results/logs/build_database").iterdir())) == 1


def test_hyper_parameter_change_retrains_only_its_experiment(experiments: Path) -> None:
    for change, name in (
        ({"experiments__exp__training__learning_rate": 0.01}, "exp"),
        ({"experiments__other__model__dropout": 0.1}, "other"),
    ):
        proc = run_workflow(experiments, with_experiments(**change), "-n")
        # nothing in features or databases, nothing of the other experiment
        assert planned(proc) == {**EXPERIMENT_JOBS, "compare_experiments": 1, "all": 1}
        assert {w.split(",")[0] for w in planned_wildcards(proc)} == {f"experiment={name}"}


def test_feature_change_reruns_features_databases_and_every_experiment(experiments: Path) -> None:
    config = with_experiments(feature_sets__logmel__n_mels=20)
    jobs = planned(run_workflow(experiments, config, "-n"))
    assert jobs == {
        "extract_features": 2,  # the log-mel shards; the baseline's functionals stay
        "build_database": 1,
        "baseline": 1,  # on the new database's rows
        **{rule: 2 * n for rule, n in EXPERIMENT_JOBS.items()},
        "compare_experiments": 1,
        "all": 1,
    }


def test_changed_wav_reruns_its_shard_and_what_depends_on_it(experiments: Path) -> None:
    meta = pd.read_csv(experiments / "results/corpora/demo/meta.tsv", sep="\t", dtype=str)
    wav = experiments / meta.iloc[3]["audio"]
    original = wav.read_bytes()
    y, sr = sf.read(wav, dtype="float32")
    try:
        sf.write(wav, y * 0.5, sr, subtype="PCM_16")
        proc = run_workflow(experiments, with_experiments(), "-n")
        jobs = planned(proc)
        for featureset in ("logmel", "baseline_functionals"):
            assert re.search(
                rf"wildcards: corpus=demo, featureset={featureset}, shard={meta.iloc[3]['shard']}$",
                proc.stdout,
                flags=re.M,
            )
    finally:
        wav.write_bytes(original)
    # its shard of each feature set: log-mel and the classic baseline's functionals
    assert jobs["extract_features"] == 2 and jobs["build_database"] == 1
    assert jobs["train_fold"] == 4 and "prepare_meta" not in jobs
    assert planned(run_workflow(experiments, with_experiments(), "-n")) == {}


# ---------------------------------------------------------------------------------------------
# code inputs: every rule's job checks that the library modules it ran are inputs of the rule


# run (and checked) by tests/workflow/test_combine.py's workflow
COMBINE_RULES = {
    "inner_fold",
    "fuse",
    "fuse_final",
    "select",
    "select_final",
    "combination_card",
}
# checked by tests/workflow/test_trust.py's run
TRUST_RULES = {"build_degraded_database", "robustness", "cross_corpus", "synthesize_demo_unseen"}


def rules_with_code_inputs(files: str = "*.smk") -> set[str]:
    """Rules of ``rules/<files>`` whose inputs include ``code=code(...)``."""
    rules = set()
    for path in (REPO / "rules").glob(files):
        blocks = re.split(r"^\s*(?:rule|checkpoint) (\w+):$", path.read_text(), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            if "code=code(" in body:
                rules.add(name)
    return rules


def test_every_rule_ran_only_tracked_library_code(
    reference: Path, experiments: Path, minmax: Path
) -> None:
    """The runs of this module and the shared reference run, made in strict mode (a job that
    loads an untracked library module fails), together ran every rule of the workflow; each
    job's log confirms the check."""
    confirmed = "every library module this job ran is an input of its rule"
    checked, unchecked = set(), []
    for work in (reference, experiments, minmax):
        for log in (work / "results/logs").rglob("*.log"):
            text = log.read_text()
            match = re.search(r"rule (\w+), wildcards", text)
            if match is None:
                continue
            (checked.add if confirmed in text else unchecked.append)(match.group(1))
    assert not unchecked
    assert checked == rules_with_code_inputs() - COMBINE_RULES - TRUST_RULES


def test_fine_tuning_waits_for_its_source_model(tmp_path: Path) -> None:
    """A fine-tuning experiment's training takes its source's final model as an input (so a
    change to the source re-trains it): read off a dry run's job list."""
    config = copy.deepcopy(EXPERIMENT_CONFIG)
    config["experiments"]["ft"] = {"database": "db", "init_from": "exp", "freeze": ["conv0"]}
    out = run_workflow(tmp_path, config, "--dry-run").stdout
    jobs = re.findall(r"^rule (\w+):\n    input: (.*)\n(?:.*\n)*?    wildcards: (.*)$", out, re.M)
    inputs = {(rule, wildcards): given for rule, given, wildcards in jobs}
    for fold in range(2):
        given = inputs["train_fold", f"experiment=ft, fold={fold}"]
        assert "results/experiments/exp/final/model.keras" in given
        assert (
            "results/experiments/exp/final"
            not in inputs["train_fold", f"experiment=exp, fold={fold}"]
        )
