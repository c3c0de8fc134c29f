"""Profiles, seeding and YAML config validation (lab_utils.config)."""
import textwrap

import pytest
import torch

from pathlib import Path

import yaml

from lab_utils.config import (ConfigError, config_family, get_profile, load_config, seed_everything,
                              setup_notebook, validate)
from lab_utils.config_schemas import Field

CONFIGS = Path(__file__).resolve().parents[1] / "configs"   # the repo's (LAB_ROOT points to a temp dir)

SCHEMA = {
    "model": {"name": Field(str), "depth": Field(int, low=1)},
    "method": Field(str, choices=("concat", "attention")),
    "lr": Field(float, low=0, low_open=True),
    "split": Field(float, low=0, high=1, low_open=True, high_open=True),
    "epochs": Field(int, default=3),
}


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_profile_from_env(monkeypatch):
    monkeypatch.setenv("LAB_PROFILE", "full")
    assert get_profile() == "full"
    monkeypatch.setenv("LAB_PROFILE", "QUICK")
    assert get_profile() == "quick"


def test_profile_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("LAB_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile() == "quick"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Tesla T4")
    assert get_profile() == "full"


def test_unknown_profile_lists_allowed(monkeypatch):
    monkeypatch.setenv("LAB_PROFILE", "fast")
    with pytest.raises(ConfigError, match=r"LAB_PROFILE='fast'.*Allowed: quick, full"):
        get_profile()


def test_setup_notebook_prints_choice_and_pins_threads(monkeypatch, capsys):
    monkeypatch.setenv("LAB_PROFILE", "quick")
    before = torch.get_num_threads()
    try:
        lab = setup_notebook("00_test", seed=3)
        out = capsys.readouterr().out
        assert out.startswith("Profile: quick (LAB_PROFILE=quick was set)")
        assert lab.threads == 2 and torch.get_num_threads() == 2
        assert lab.out_dir.name == "00_test" and lab.out_dir.is_dir()
        path = lab.log_metrics(acc=0.123456, nested={"a": torch.tensor(2.0)})
        assert '"acc": 0.1235' in path.read_text()
    finally:
        torch.set_num_threads(before)


def test_seed_everything_repeats_random_draws():
    seed_everything(7)
    a = torch.rand(3)
    seed_everything(7)
    assert torch.equal(a, torch.rand(3))


def test_valid_config_and_float_strings(tmp_path):
    path = write(tmp_path, "exp.yml", """
        model: {name: vit, depth: 4}
        method: attention
        lr: 2e-5
        split: 0.2
    """)
    cfg = load_config(path, schema=SCHEMA)
    assert cfg.lr == pytest.approx(2e-5) and isinstance(cfg.lr, float)   # YAML gives the string '2e-5'
    assert cfg.model.depth == 4 and cfg.epochs == 3                      # default filled in


@pytest.mark.parametrize("body, message", [
    ("model: {name: vit, depht: 4}\nmethod: concat\nlr: 0.1\nsplit: 0.2",
     r"unknown key 'model.depht'\. Did you mean 'model.depth'\? Known keys under model: name, depth"),
    ("model: {name: vit, depth: 4}\nmethod: sum\nlr: 0.1\nsplit: 0.2",
     r"'method' = 'sum' is not allowed\. Allowed: 'concat', 'attention'"),
    ("model: {name: vit, depth: four}\nmethod: concat\nlr: 0.1\nsplit: 0.2",
     r"'model.depth' must be of type int, got 'four' \(str\)"),
    ("model: {name: vit, depth: 4}\nmethod: concat\nlr: 0.1\nsplit: 1.0",
     r"'split' = 1.0 is out of range: it must be < 1"),
    ("model: {name: vit, depth: 4}\nmethod: concat\nlr: 0\nsplit: 0.5",
     r"'lr' = 0.0 is out of range: it must be > 0"),
    ("model: {name: vit, depth: 4}\nmethod: concat\nsplit: 0.5",
     r"missing key 'lr'"),
    ("model: {name: vit, depth: true}\nmethod: concat\nlr: 0.1\nsplit: 0.5",
     r"'model.depth' must be of type int, got True"),
])
def test_bad_configs_name_key_and_value(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, "exp.yml", body), schema=SCHEMA)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match=r"Config file not found: tried .*nope\.yml"):
        load_config(tmp_path / "nope.yml", schema=SCHEMA)


def test_invalid_yaml_gives_line_number(tmp_path):
    path = write(tmp_path, "exp.yml", "method: concat\nlr: [0.1\nsplit: 0.2\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+"):
        load_config(path, schema=SCHEMA)


def test_unknown_family_lists_known(tmp_path):
    with pytest.raises(ConfigError, match=r"top-level keys \(a\) belong to no config family "
                                          r"\(known: .*model.*\).*family="):
        load_config(write(tmp_path, "mystery.yml", "a: 1"))


@pytest.mark.parametrize("family", ["model", "clip", "fer", "fusion", "vit_patching"])
def test_a_copy_of_a_config_loads_by_its_keys(tmp_path, family):
    """configs/my_run.yml, a copy of configs/<family>.yml, loads as that family, in both
    profiles, with the family's quick overrides merged in the quick profile."""
    original = CONFIGS / f"{family}.yml"
    copy = tmp_path / "my_run.yml"
    copy.write_text(original.read_text())
    for profile in ("quick", "full"):
        assert load_config(copy, profile=profile) == load_config(original, profile=profile)
    assert config_family(yaml.safe_load(original.read_text())) == family


def test_explicit_family_and_unknown_family(tmp_path):
    copy = tmp_path / "experiment.yml"
    copy.write_text((CONFIGS / "model.yml").read_text())
    assert load_config(copy, profile="full", family="model").fusion.method == "concat"
    with pytest.raises(ConfigError, match=r"family='modle' is not a config family\. Known families: .*model"):
        load_config(copy, family="modle")
    with pytest.raises(ConfigError, match=r"unknown key 'vit'. Known keys: model, data, train"):
        load_config(copy, family="fusion")     # the wrong family: its schema names what does not fit


def test_copy_with_a_typo_is_read_as_the_closest_family(tmp_path):
    body = (CONFIGS / "model.yml").read_text().replace("patience:", "patiense:")
    with pytest.raises(ConfigError, match=r"unknown key 'patiense'\. Did you mean 'patience'\?.*"
                                          r"read as a 'model' config"):
        load_config(write(tmp_path, "mine.yml", body))


def test_ambiguous_keys_name_the_families_that_fit(tmp_path, monkeypatch):
    from lab_utils import config

    schemas = {"a": {"lr": Field(float)}, "b": {"lr": Field(float, low=0)}}
    monkeypatch.setattr(config, "SCHEMAS", schemas)
    with pytest.raises(ConfigError, match=r"fit several config families \(a, b\).*family="):
        load_config(write(tmp_path, "run.yml", "lr: 0.1"))
    assert load_config(tmp_path / "run.yml", family="b").lr == 0.1


def test_quick_override_merges_sizes_only(tmp_path):
    write(tmp_path, "exp.yml", "model: {name: vit, depth: 12}\nmethod: concat\nlr: 0.1\nsplit: 0.2\n")
    write(tmp_path, "exp.quick.yml", "model: {depth: 2}\nepochs: 1\n")
    quick = load_config(tmp_path / "exp.yml", profile="quick", schema=SCHEMA)
    full = load_config(tmp_path / "exp.yml", profile="full", schema=SCHEMA)
    assert (quick.model.depth, quick.model.name, quick.epochs) == (2, "vit", 1)
    assert (full.model.depth, full.epochs) == (12, 3)
    write(tmp_path, "exp.quick.yml", "modle: {depth: 2}\n")
    with pytest.raises(ConfigError, match=r"exp\.quick\.yml: unknown key 'modle'"):
        load_config(tmp_path / "exp.yml", profile="quick", schema=SCHEMA)


def test_validate_rejects_scalar_for_section():
    with pytest.raises(ConfigError, match=r"'model' must be a section with keys name, depth"):
        validate({"model": "vit"}, SCHEMA, partial=True)


def test_amp_follows_the_hardware(monkeypatch):
    """bf16 only with bfloat16 tensor cores (capability ≥ 8.0), fp16 (+ GradScaler in fit) below,
    nothing on the CPU — whatever torch.cuda.is_bf16_supported() says (True on a T4: emulation)."""
    import torch

    from lab_utils.config import amp_dtype, describe_amp

    assert amp_dtype("cpu") is None and describe_amp("cpu") == "AMP: off (CPU, float32)"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)   # a T4 says so (emulated)
    gpus = {"Tesla T4": (7, 5), "Tesla V100-SXM2-16GB": (7, 0), "Tesla P100-PCIE-16GB": (6, 0),
            "NVIDIA A100-SXM4-40GB": (8, 0), "NVIDIA L4": (8, 9), "NVIDIA H100 80GB HBM3": (9, 0)}
    for name, capability in gpus.items():
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, n=name: n)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, c=capability: c)
        want = torch.bfloat16 if capability >= (8, 0) else torch.float16
        assert amp_dtype("cuda") == want, name
        assert amp_dtype("cuda", amp=False) is None
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 5))
    assert describe_amp("cuda") == ("AMP: fp16 + GradScaler (Tesla T4, compute capability 7.5: "
                                    "no bfloat16 tensor cores, bf16 would be emulated)")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA A100-SXM4-40GB")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    assert describe_amp("cuda") == "AMP: bf16 (NVIDIA A100-SXM4-40GB, compute capability 8.0, has bfloat16 tensor cores)"


def test_lab_threads_overrides_the_pinned_thread_count(monkeypatch, capsys):
    """LAB_THREADS=N replaces a notebook's pinned thread count (and the set-up line says so); a
    value that is not a positive whole number is refused with what is allowed."""
    from lab_utils.config import setup_notebook

    before = torch.get_num_threads()
    monkeypatch.setenv("LAB_PROFILE", "quick")
    try:
        monkeypatch.delenv("LAB_THREADS", raising=False)
        assert setup_notebook("test", threads=1).threads == 1
        assert "torch threads: 1 · seed: 0" in capsys.readouterr().out
        monkeypatch.setenv("LAB_THREADS", "3")
        assert setup_notebook("test", threads=1).threads == 3 == torch.get_num_threads()
        assert "torch threads: 3 (LAB_THREADS=3) · seed: 0" in capsys.readouterr().out
        for bad in ("0", "two", "-1"):
            monkeypatch.setenv("LAB_THREADS", bad)
            with pytest.raises(ConfigError, match=f"LAB_THREADS='{bad}' is not a thread count. Allowed: a whole "
                                                  "number ≥ 1"):
                setup_notebook("test")
    finally:
        torch.set_num_threads(before)


def test_metric_key_spells_one_convention():
    from lab_utils.config import metric_key

    assert metric_key("f1", "rgb only, 2 encoders") == "f1_rgb_only_2_encoders"
    assert metric_key("f1", "plain, twice the epochs") == "f1_plain_twice_the_epochs"
    assert metric_key("early add", "points lost", "RGB hidden") == "early_add_points_lost_rgb_hidden"
    assert metric_key("neighbours", "expression", "CLIP") == "neighbours_expression_clip"
    assert metric_key("f1", "ViT") == "f1_vit"


def test_config_fingerprint_names_the_experiment_whatever_the_seed():
    """A benchmark's rows stand for a config while its fingerprint is unchanged: another seed keeps
    it; any other value (a learning rate one digit apart, a nested key) changes it."""
    from pathlib import Path
    from lab_utils.config import config_fingerprint, load_config

    fusion = Path(__file__).resolve().parents[1] / "configs" / "fusion.yml"
    cfg = load_config(fusion, profile="quick")
    base = config_fingerprint(cfg)
    assert len(base) == 12 and base == config_fingerprint(load_config(fusion, profile="quick"))
    assert config_fingerprint({**cfg, "seed": cfg["seed"] + 1}) == base
    lr = cfg["train"]["learning_rate"]
    assert config_fingerprint({**cfg, "train": {**cfg["train"], "learning_rate": lr * 1.0001}}) != base
    assert config_fingerprint(load_config(fusion, profile="full")) != base
