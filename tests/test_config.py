from pathlib import Path

import pytest

from audio_lottery.config import Config, ConfigError, config_hash, describe, load_config, non_defaults

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_presets_load():
    from audio_lottery.models import MODEL_NAMES

    for path in CONFIGS.glob("*.yaml"):
        cfg = load_config(path)
        assert cfg.model.name in MODEL_NAMES and path.stem.startswith(cfg.model.name)


def test_overrides_coerce_types():
    cfg = load_config(CONFIGS / "ds2_tiny.yaml", ["train.epochs=3", "train.lr=0.01", "data.augment.freq_masks=2",
                                                  "model.ds2.conv_channels=[8, 8]", "train.sortagrad=false"])
    assert cfg.train.epochs == 3 and cfg.train.lr == 0.01 and cfg.data.augment.freq_masks == 2
    assert cfg.model.ds2.conv_channels == [8, 8] and cfg.train.sortagrad is False


@pytest.mark.parametrize("override, needle", [
    ("train.epochz=3", "train.epochz"),
    ("train.epochs=three", "train.epochs"),
    ("data.tokenizer=words", "data.tokenizer"),
    ("prune.strategy=magic", "prune.strategy"),
    ("nokey", "dotted.key=value"),
])
def test_bad_overrides_name_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(None, [override])


def test_bad_file_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: [1, 2]}\n")
    with pytest.raises(ConfigError, match="bad.yaml.*train.epochs"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_hash_depends_only_on_non_defaults():
    a, b = Config(), Config()
    assert config_hash(a) == config_hash(b) and non_defaults(a) == {}
    b.train.lr = 1e-2
    assert config_hash(a) != config_hash(b)
    assert non_defaults(b) == {"train": {"lr": 1e-2}}


def test_every_field_has_help():
    rows = describe()
    assert rows and all(help_text for _, _, help_text in rows)


def test_presets_named_by_the_docs_exist():
    for name in ("ds2_paper", "ds2_small", "ds2_demo", "ds2_tiny"):
        assert (CONFIGS / f"{name}.yaml").is_file(), name
    from audio_lottery.demo import parse_args

    assert Path(parse_args([]).config).name == "ds2_demo.yaml"


def test_learning_rate_schedules():
    from audio_lottery.train.loop import learning_rate

    cfg = Config()
    cfg.train.lr, cfg.train.warmup_steps, cfg.train.lr_anneal = 1.0, 10, 2.0
    assert learning_rate(cfg, 4, 0) == pytest.approx(0.5)
    assert learning_rate(cfg, 100, 3) == pytest.approx(1 / 8)
    cfg.train.schedule = "noam"
    assert learning_rate(cfg, 9, 0) == pytest.approx(1.0)
    assert learning_rate(cfg, 39, 5) == pytest.approx(0.5)
    cfg.train.schedule = "linear_decay"
    assert learning_rate(cfg, 4, 0, progress=0.0) == pytest.approx(0.5)  # warm-up still applies
    assert learning_rate(cfg, 100, 3, progress=0.25) == pytest.approx(0.75)  # the epoch alone does not anneal
    assert learning_rate(cfg, 100, 3, progress=1.0) == 0.0


def test_budget_progress_is_the_first_limit_to_run_out():
    from audio_lottery.train.loop import budget_progress

    cfg = Config()
    cfg.train.epochs = 10
    assert budget_progress(cfg, 2.5, 1000, 1e6) == pytest.approx(0.25)  # only epochs are set
    cfg.train.max_steps, cfg.train.max_minutes = 4000, 30.0
    assert budget_progress(cfg, 2.5, 2000, 60.0) == pytest.approx(0.5)  # steps run out first
    assert budget_progress(cfg, 2.5, 2000, 1350.0) == pytest.approx(0.75)  # minutes run out first
    assert budget_progress(cfg, 12.0, 0, 0.0) == 1.0


def test_a_retired_key_with_its_old_value_loads_and_leaves_the_hash_alone(tmp_path):
    """A run saved before ``lottery.replicate`` went carries ``replicate: 0``: it still loads, to the
    same config and hash as without it; any other value is refused, naming the key and the reason."""
    saved = tmp_path / "config.yaml"
    saved.write_text("lottery: {levels: 3, replicate: 0}\n")
    cfg = load_config(saved)
    assert cfg == load_config(None, ["lottery.levels=3"])
    assert config_hash(cfg) == config_hash(load_config(None, ["lottery.levels=3"]))
    saved.write_text("lottery: {levels: 3, replicate: 2}\n")
    with pytest.raises(ConfigError, match=r"config.yaml: lottery.replicate is retired .*train.seed.* got 2"):
        load_config(saved)
    with pytest.raises(ConfigError, match="unknown key 'lottery.replicates'"):
        load_config(None, ["lottery.replicates=0"])
