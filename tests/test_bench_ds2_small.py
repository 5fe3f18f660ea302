"""bench/bench_ds2_small.py: its test-set subsets, the old test set without training sentences,
and the headline numbers it reads from the bench's previous page."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_ds2_small as bench  # noqa: E402
from quick import md_table  # noqa: E402
from results_io import parse_tables  # noqa: E402


def _rec(i: int, engine: str, seen: bool, sex: str = "male", text: str | None = None) -> dict:
    return {"id": f"u{i}", "engine": engine, "seen_voice": seen, "sex": sex, "text": text or f"words {i}"}


def test_subsets_split_by_seen_voice_engine_and_sex():
    recs = [_rec(0, "espeak", True), _rec(1, "espeak", False, "female"), _rec(2, "flite", False)]
    groups = {k: [r["id"] for r in v] for k, v in bench.subsets(recs).items()}
    assert groups["all"] == ["u0", "u1", "u2"]
    assert groups["held-out voices"] == ["u1", "u2"] and groups["seen voices"] == ["u0"]
    assert groups["espeak, held-out"] == ["u1"] and groups["flite, held-out"] == ["u2"]
    assert groups["female voices"] == ["u1"] and groups["male voices"] == ["u0", "u2"]


def test_scores_of_a_subset_come_from_its_own_hypotheses():
    recs = [_rec(0, "espeak", True, text="a cat"), _rec(1, "espeak", False, text="a dog")]
    s = bench.subset_scores(recs, {"u0": "a cat", "u1": "a cat"})
    assert s["utterances"] == 2 and abs(s["wer"] - 0.25) < 1e-9  # one substitution in four words


def test_old_test_set_drops_the_sentences_training_holds(tmp_path):
    old = tmp_path / "test.jsonl"
    old.write_text("".join(json.dumps({**_rec(i, "espeak", False, text=t), "audio": "x.flac", "duration": 1.0, "speaker": "s"}) + "\n"
                           for i, t in enumerate(["in training", "new sentence"])))
    kept, dropped = bench.old_test_records(old, [{"text": "in training"}])
    assert [r["text"] for r in kept] == ["new sentence"] and dropped == 1


def test_previous_rows_read_the_old_page_layout():
    page = (md_table(["", ""], [["training time (excl. dev evaluation)", "30.0 min, 22 epochs"],
                                ["**test WER (greedy)**", "**0.685**"], ["**test CER (greedy)**", "**0.297**"]])
            + "\n\n" + md_table(["subset", "utterances", "WER", "CER"], [["seen voices", "79", "0.492", "0.146"],
                                                                        ["unseen voices", "81", "0.870", "0.449"]]))
    rows = bench.previous_rows({"tables": parse_tables(page)})
    assert rows == {"parameters": "–", "training time": "30.0 min", "epochs": "22", "throughput": "–",
                    "best_dev_wer": "–", "test_wer": "0.685", "held_out_wer": "0.870", "test_cer": "0.297",
                    "old_test_wer": "–", "recipe": {"recurrent dropout": "none"}}


def test_previous_rows_read_the_current_page_layout():
    page = (md_table(["", ""], [["parameters", "5,892,448"], ["training time (excl. dev evaluation)", "60.0 min, 26 epochs"],
                                ["training throughput", "90.2 audio s per wall s"],
                                ["learning rate", "peak 0.0015, divided by 1.3 after every epoch"],
                                ["best dev epoch", "9 (dev WER 0.301, CER 0.083)"],
                                ["**test WER (greedy)**", "**0.614**"], ["**test CER (greedy)**", "**0.234**"],
                                ["test decoding real-time factor", "0.0100"]])
            + "\n\n" + md_table(["subset", "utterances", "WER", "CER", "old-set utterances", "old-set WER", "old-set CER"],
                                 [["all", "156", "0.614", "0.234", "160", "0.447", "0.151"],
                                  ["espeak, held-out", "40", "0.714", "0.3", "41", "0.5", "0.2"],
                                  ["held-out voices", "80", "0.765", "0.3", "–", "–", "–"]]))
    rows = bench.previous_rows({"tables": parse_tables(page)})
    assert rows == {"parameters": "5,892,448", "training time": "60.0 min", "epochs": "26", "throughput": "90.2",
                    "best_dev_wer": "0.301", "test_wer": "0.614", "held_out_wer": "0.765", "test_cer": "0.234",
                    "old_test_wer": "0.447",
                    "recipe": {"learning rate": "peak 0.0015, divided by 1.3 after every epoch",
                               "recurrent dropout": "none"}}


def test_recurrent_dropout_of_a_page_comes_from_its_row_else_from_its_overrides():
    with_row = md_table(["", ""], [["recurrent dropout", bench.recurrent_dropout(0.3)]])
    assert bench.previous_rows({"tables": parse_tables(with_row)})["recipe"]["recurrent dropout"] == (
        "0.3 on every LSTM layer's output, in training only")
    older = {"tables": parse_tables(md_table(["", ""], [["parameters", "5"]])),
             "data": {"overrides": ["data.augment.noise_prob=0.5", "model.ds2.rnn_dropout=0.2"]}}
    assert bench.previous_rows(older)["recipe"] == {"recurrent dropout": "0.2 on every LSTM layer's output, in training only"}
    assert bench.stated_dropout({"data": {"overrides": ["data.augment.noise_prob=0.5"]}}) == "none"


def test_recipe_difference_names_only_the_rows_that_changed():
    before = {"front-end": "80 log-mel bands", "learning rate": "peak 0.0015, divided by 1.3",
              "training augmentation": "vtlp_prob=1.0", "precision, weight average": "float32", "recurrent dropout": "none"}
    now = {"front-end": "40 log-mel bands", "learning rate": "peak 0.0015, divided by 1.3",
           "training augmentation": "vtlp_prob=1.0", "precision, weight average": "float32", "recurrent dropout": "none",
           "parameters": "5,073,248"}
    assert bench.recipe_difference(before, now) == "front-end: 80 log-mel bands"
    assert bench.recipe_difference({**before, "front-end": "40 log-mel bands"}, now) == "same"
    assert bench.recipe_difference({"learning rate": "peak 0.0015, divided by 1.3"}, now) == (
        "front-end, training augmentation, precision, weight average, recurrent dropout: not on its page")


def test_training_set_with_a_test_sentence_or_held_out_voice_is_refused():
    test = [{**_rec(0, "flite", False, text="a held out line"), "voice": "awb"},
            {**_rec(1, "flite", True, text="a seen line"), "voice": "kal"}]
    ok = [{**_rec(2, "flite", True, text="other words"), "voice": "kal"}]
    bench.check_training_set(ok, test, Path("train.jsonl"))  # no error
    with pytest.raises(SystemExit, match="train.jsonl: 1 sentences of the test or dev set"):
        bench.check_training_set(ok + [{**ok[0], "text": "a seen line"}], test, Path("train.jsonl"))
    with pytest.raises(SystemExit, match=r"held out of the test set.*\('flite', 'awb'\)"):
        bench.check_training_set(ok + [{**ok[0], "voice": "awb"}], test, Path("train.jsonl"))


def test_epoch_losses_number_epochs_as_the_dev_passes():
    metrics = [{"event": "start", "epoch": 0, "step": 0}, {"epoch": 0, "loss": 3.0}, {"epoch": 0, "loss": 1.0},
               {"epoch": 1, "dev_wer": 0.9}, {"epoch": 1, "loss": 0.5}]
    assert bench.epoch_losses(metrics) == {1: 2.0, 2: 0.5}


def test_train_sample_spreads_over_the_manifest():
    recs = [{"id": str(i)} for i in range(10)]
    assert [r["id"] for r in bench.train_sample(recs, 3)] == ["0", "3", "6"]
    assert len(bench.train_sample(recs, 50)) == 10


def test_training_set_from_another_corpus_version_is_refused():
    bench.check_same_version({"corpus_version": 2}, {"corpus_version": 2, "corpus_hours": 8.0}, Path("t.jsonl"))
    bench.check_same_version({"corpus_version": 2}, {}, Path("t.jsonl"))  # a manifest from elsewhere: unversioned
    with pytest.raises(SystemExit, match="t.jsonl: corpus version 1, but the test set's corpus is version 2"):
        bench.check_same_version({"corpus_version": 2}, {"corpus_version": 1}, Path("t.jsonl"))


def test_training_manifest_defaults_to_a_larger_synthesis_beside_the_corpus(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(bench, "synthesize_corpus", lambda out, hours, seed, train_pitch_variants:
                        made.append((out.name, hours, seed, train_pitch_variants)))
    data = tmp_path / "synth"
    assert bench.training_manifest(data, None, 8.0) == tmp_path / "synth_8h" / "train.jsonl"
    assert made == [("synth_8h", 8.0, 0, False)]
    assert bench.training_manifest(data, None, 0) == data / "train.jsonl"
    assert bench.training_manifest(data, Path("x.jsonl"), 8.0) == Path("x.jsonl") and len(made) == 1
    assert bench.training_manifest(data, None, 8.0, pitch_variants=True) == tmp_path / "synth_8h_pitch" / "train.jsonl"
    assert made[-1] == ("synth_8h_pitch", 8.0, 0, True)


def test_variant_label_names_the_overrides_and_the_pitch_variants():
    page = {"data": {"overrides": ["model.ds2.rnn_hidden=448", "train.lr=0.003"]},
            "conditions": {"train_corpus_train_pitch_variants": True}}
    assert bench.variant_label(page) == ("training-only pitch variants; --set model.ds2.rnn_hidden=448; "
                                         "--set train.lr=0.003")
    assert bench.variant_label({"data": {"overrides": []}, "conditions": {}}) == ""
    assert bench.variant_label({"data": {}, "conditions": {}}) == ""  # a page older than --set


def test_learning_rate_schedule_states_the_anneal_and_the_warm_up():
    from audio_lottery.config import TrainConfig

    assert bench.learning_rate_schedule(TrainConfig(lr=1.5e-3, lr_anneal=1.15, warmup_steps=150)) == (
        "peak 0.0015, linear warm-up over 150 steps, divided by 1.15 after every epoch")
    noam = bench.learning_rate_schedule(TrainConfig(lr=1e-3, schedule="noam", warmup_steps=0))
    assert noam == "peak 0.001, then peak * sqrt(warm-up / step)"
    linear = bench.learning_rate_schedule(TrainConfig(lr=1e-3, schedule="linear_decay", warmup_steps=150))
    assert linear == ("peak 0.001, linear warm-up over 150 steps, "
                      "times a linear decay to 0 at the end of the training budget")


def test_training_numerics_state_the_autocast_and_the_weight_average():
    from audio_lottery.config import TrainConfig

    assert bench.training_numerics(TrainConfig()) == "float32; no weight average"
    assert bench.training_numerics(TrainConfig(amp="bf16", ema_decay=0.995)) == (
        "bfloat16 autocast (CTC loss in float32); moving average of the weights (decay 0.995) evaluated and kept")


def test_front_end_name_gives_bands_window_and_hop():
    from audio_lottery.config import FeatureConfig

    assert bench.front_end_name(FeatureConfig(n_mels=40)) == "40 log-mel bands (25 ms window, 10 ms hop)"
    assert bench.front_end_name(FeatureConfig(kind="linear", win_ms=20.0)) == "linear features (20 ms window, 10 ms hop)"


def test_output_units_name_the_tokenizer_and_its_class_count():
    from audio_lottery.data.pipeline.tokenizers import CharTokenizer, VocabSize

    char = bench.output_units(CharTokenizer())
    assert char.startswith("characters (") and f"({CharTokenizer().vocab_size} CTC classes" in char
    assert bench.output_units(VocabSize("bpe", 256)) == "sentencepiece BPE pieces (256 CTC classes incl. the blank)"


def test_overrides_come_after_the_bench_keys_and_the_page_names_them(tmp_path):
    cfg = bench.bench_config(str(bench.ROOT / "configs" / "ds2_small.yaml"), tmp_path, tmp_path / "t.jsonl", 60, 9,
                             ["data.augment.speed_prob=1.0", "train.max_minutes=5"])
    assert cfg.data.augment.speed_prob == 1.0 and cfg.data.augment.vtlp_prob == 1.0  # the preset's own kept
    assert cfg.train.max_minutes == 5 and cfg.train.epochs == 9  # a --set beats the bench's own key
    assert cfg.data.test_manifest == str(tmp_path / "test.jsonl")
    assert bench.preset_name("configs/ds2_small.yaml", []) == "preset `ds2_small.yaml`"
    assert (bench.preset_name("configs/ds2_small.yaml", ["data.augment.speed_prob=1.0"])
            == "preset `ds2_small.yaml` with `data.augment.speed_prob=1.0`")


def test_last_step_weights_are_the_steps_own_and_their_average(tmp_path):
    import torch

    from audio_lottery.train.checkpoint import save_training_state
    from audio_lottery.train.weight_average import WeightAverage

    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, 0.9)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(3):
        optimizer.zero_grad()
        model(torch.ones(1, 3)).sum().backward()
        optimizer.step()
        average.update(model, step)
    save_training_state(tmp_path, "last", model, optimizer, {"step": 3}, average)
    weights = bench.last_step_weights(tmp_path)
    assert set(weights) == {"moving average", "last step's own"}
    assert torch.equal(weights["last step's own"]["weight"], model.weight.detach())
    assert torch.equal(weights["moving average"]["bias"], average.tensors["bias"])
    assert not torch.equal(weights["moving average"]["bias"], model.bias.detach())  # SGD moved the step past its average
    save_training_state(tmp_path, "last", model, optimizer, {"step": 3})
    assert bench.last_step_weights(tmp_path) == {}  # a run without an average
    assert bench.last_step_weights(tmp_path / "missing") == {}


def test_with_previous_replaces_only_the_previous_list():
    cmd = "python bench/bench_ds2_small.py --run runs/x --previous a.json b.json --old-test t.jsonl"
    assert bench.with_previous(cmd, [Path("c.json")]) == (
        "python bench/bench_ds2_small.py --run runs/x --old-test t.jsonl --previous c.json")
    assert bench.with_previous(cmd, []) == "python bench/bench_ds2_small.py --run runs/x --old-test t.jsonl"


def _page_copy(tmp_path: Path) -> tuple[Path, list[Path]]:
    """The repository's ds2_small page in ``tmp_path`` and the --previous list its command names (relative to
    the repository, as the command writes them)."""
    for suffix in (".md", ".json"):
        (tmp_path / f"bench_ds2_small{suffix}").write_bytes((ROOT / "docs" / f"bench_ds2_small{suffix}").read_bytes())
    words = json.loads((ROOT / "docs" / "bench_ds2_small.json").read_text())["command"].split()
    previous = [Path(w) for w in words[words.index("--previous") + 1:]]
    return tmp_path / "bench_ds2_small.md", previous


def test_refreshing_the_table_with_the_same_pages_leaves_the_page_as_measured(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the page's command names its pages relative to the repository
    doc, previous = _page_copy(tmp_path)
    before = (doc.read_text(), doc.with_suffix(".json").read_text())
    bench.refresh_before_after(doc, previous)
    assert (doc.read_text(), doc.with_suffix(".json").read_text()) == before


def test_a_refreshed_table_gains_or_loses_exactly_the_rows_of_the_pages_named(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the page's command names its pages relative to the repository
    doc, relative = _page_copy(tmp_path)
    original = doc.read_text()
    bench.refresh_before_after(doc, relative[:-1])
    table = next(t for t in json.loads(doc.with_suffix(".json").read_text())["tables"] if t["headers"][0] == "run")
    assert [r[0].split(" (")[0] for r in table["rows"]] == [p.name for p in relative[:-1]] + ["now"]
    assert f"--previous {' '.join(map(str, relative[:-1]))}`" in doc.read_text()
    bench.refresh_before_after(doc, relative)
    assert doc.read_text() == original  # the row comes back as it was: nothing else on the page moved


def test_refreshing_a_page_without_a_before_after_table_is_refused(tmp_path):
    doc, _ = _page_copy(tmp_path)
    text = doc.read_text().replace(bench.BEFORE_AFTER, "Some other paragraph.")
    doc.write_text(text)
    with pytest.raises(SystemExit, match="no before/after table"):
        bench.refresh_before_after(doc, [])
