import pytest

from jtm.config import ConfigError, ResampleConfig, load_params, section, validate_params
from tests.conftest import REPO

pytestmark = pytest.mark.check  # the contributor tier: make check


def test_overrides_parse_yaml_values():
    params = load_params(
        REPO / "params.yaml", ["resample.quality=HQ", "resample.workers=3", "demo.soundfont=null"]
    )
    cfg = section(params, "resample", ResampleConfig)
    assert cfg.quality == "HQ" and cfg.workers == 3
    assert params["demo"]["soundfont"] is None


@pytest.mark.parametrize("override", ["resample.qualty=HQ", "nosuch.key=1", "resample", "=3"])
def test_bad_override_is_an_error(override):
    with pytest.raises(ConfigError):
        load_params(REPO / "params.yaml", [override])


def test_section_rejects_unknown_and_missing_keys():
    params = load_params(REPO / "params.yaml")
    params["resample"]["extra"] = 1
    with pytest.raises(ConfigError, match="unknown keys \\['extra'\\]"):
        section(params, "resample", ResampleConfig)
    del params["resample"]["extra"], params["resample"]["dtype"]
    with pytest.raises(ConfigError, match="missing keys \\['dtype'\\]"):
        section(params, "resample", ResampleConfig)


def test_unreadable_params_file_names_it(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("a: [unclosed")
    with pytest.raises(ConfigError, match=str(bad)):
        load_params(bad)


def test_validate_params_catches_a_typo_in_any_section():
    params = load_params(REPO / "params.yaml")
    validate_params(params)
    params["index"]["hopp"] = params["index"].pop("hop")
    with pytest.raises(ConfigError, match="'index'.*unknown keys \\['hopp'\\].*missing keys \\['hop'\\]"):
        validate_params(params)


def test_a_number_in_exponent_notation_is_a_number():
    """YAML 1.1 (PyYAML) reads 1e-3 as a string; DVC's YAML 1.2 reads a number: so do we."""
    params = load_params(REPO / "params.yaml", ["pretrain.lr=1e-3", "downstream.l2_grid=[5E-4, 1e-5]"])
    validate_params(params)
    assert params["pretrain"]["lr"] == 0.001 and params["downstream"]["l2_grid"] == [0.0005, 1e-05]


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        (
            "pretrain.encoder=wavenet",
            "pretrain.encoder='wavenet'",
            "use one of ['conv', 'sinc', 'logmel', 'cqt']",
        ),
        ("pretrain.lr=fast", "pretrain.lr='fast'", "expected number"),
        ("pretrain.steps=0", "pretrain.steps=0", "must be >= 1"),
        ("downstream.budgets=[1, most]", "downstream.budgets[1]='most'", "expected integer or 'all'"),
        ("downstream.l2_grid=[0.1, 0]", "downstream.l2_grid[1]=0", "must be > 0"),
        ("downstream.tasks=[ensemble, genre]", "downstream.tasks[1]='genre'", "use one of"),
        ("resample.quality=best", "resample.quality='best'", "'VHQ'"),
        ("pretrain.bf16=maybe", "pretrain.bf16='maybe'", "expected boolean"),
        ("downstream.seeds=[]", "downstream.seeds=[]", "at least 1"),
    ],
)
def test_a_bad_value_names_the_params_file_used_the_key_the_value_and_what_is_allowed(
    tmp_path, capsys, override, key, allowed
):
    from jtm.cli import main

    other = tmp_path / "other.yaml"
    other.write_text((REPO / "params.yaml").read_text())
    assert main(["index", "--params", str(other), "--set", override]) == 2
    err = capsys.readouterr().err
    assert f"{other}: {key}" in err and allowed in err and "params.yaml" not in err.replace(str(other), "")


def test_a_stage_time_config_error_names_the_params_file_used(tmp_path, capsys):
    from jtm.cli import main

    other = tmp_path / "other.yaml"
    other.write_text((REPO / "params.yaml").read_text())
    args = ["acquire", "--params", str(other), "--set", "data.source=local"]
    args += ["--set", f"paths.raw={tmp_path}/r", "--set", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{other}: data.source=local needs data.path" in err


def test_old_key_names_are_read_under_their_new_names(tmp_path):
    text = (REPO / "params.yaml").read_text()
    text = text.replace("  attention_heads:", "  heads:").replace("  probes:", "  heads:")
    old = tmp_path / "old.yaml"
    old.write_text(text)
    with pytest.warns(UserWarning, match="pretrain.heads is now called pretrain.attention_heads"):
        params = load_params(old, ["pretrain.head=transformer"])
    validate_params(params)
    assert params["pretrain"]["attention_heads"] == 4 and params["pretrain"]["predictor"] == "transformer"
    assert params["downstream"]["probes"] == load_params(REPO / "params.yaml")["downstream"]["probes"]


def test_the_schema_offers_exactly_the_registry_names():
    from jtm import choices
    from jtm.config import params_schema

    schema = params_schema()["properties"]
    assert schema["pretrain"]["properties"]["encoder"]["enum"] == list(choices.ENCODERS)
    assert schema["pretrain"]["properties"]["predictor"]["enum"] == list(choices.PREDICTORS)
    assert schema["downstream"]["properties"]["probes"]["items"]["enum"] == list(choices.PROBES)
    assert schema["embed"]["properties"]["features"]["items"]["enum"] == list(choices.FEATURES)


def test_a_bookkeeping_key_is_no_stage_param_and_an_output_key_is():
    from jtm.config import PretrainConfig, output_fields
    from jtm.stages import STAGES

    pretrain = STAGES["pretrain"].params
    assert "pretrain.val_batches" in pretrain and "pretrain.val_batches".split(".")[1] in output_fields(
        PretrainConfig
    )
    for key in ("workers", "checkpoint_every", "fetch_threads"):
        assert f"pretrain.{key}" not in pretrain and key not in output_fields(PretrainConfig)
    for key in ("device", "bf16", "compile"):  # a CUDA model is another model (#23)
        assert f"pretrain.{key}" in pretrain
    assert "data.retries" not in STAGES["acquire"].params
    assert "resample.workers" not in STAGES["resample"].params


def test_an_old_key_name_on_the_command_line_warns_too():
    with pytest.warns(
        UserWarning, match="--set pretrain.heads: pretrain.heads is now called pretrain.attention_heads"
    ):
        params = load_params(REPO / "params.yaml", ["pretrain.heads=2"])
    assert params["pretrain"]["attention_heads"] == 2


def test_a_misspelled_key_gets_a_did_you_mean():
    with pytest.raises(ConfigError, match=r"unknown key 'hiden'; did you mean 'hidden'\?$"):
        load_params(REPO / "params.yaml", ["pretrain.hiden=3"])
    with pytest.raises(ConfigError, match=r"known: seed, runs"):  # nothing close: the keys listed
        load_params(REPO / "params.yaml", ["pretrain.zzzz=3"])
    params = load_params(REPO / "params.yaml")
    params["pretrain"]["stpes"] = params["pretrain"].pop("steps")
    with pytest.raises(ConfigError, match=r"did you mean 'stpes' for 'steps'\?"):
        validate_params(params)


def test_a_closed_pipe_ends_the_command_quietly(monkeypatch, capfd):
    """`jtm schema | head`: the reader has closed the pipe; no traceback, exit 141 (SIGPIPE's)."""
    import os

    from jtm.cli import main

    read, write = os.pipe()
    os.close(read)  # the reader is gone: every write fails with EPIPE
    with open(write, "w") as closed:
        monkeypatch.setattr("sys.stdout", closed)
        assert main(["schema"]) == 141
    assert capfd.readouterr().err == ""


def test_every_params_key_has_a_description_and_headings_describe_no_key(tmp_path):
    """The params reference (jtm/config/reference.py) gives every key the words params.yaml
    has for it: none is blank, and a heading comment (a blank line after it) is nobody's."""
    import yaml

    from jtm.config.reference import comments

    found = comments(REPO / "params.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    blank = [
        f"{s}.{k}" for s, node in params.items() for k in node if len(found.get(f"{s}.{k}", "").split()) < 2
    ]
    assert blank == []
    assert "loss and sampling" not in found["pretrain.n_negatives"]
    assert "Bach" not in found["demo.scores"]  # comments inside a list belong to no key
    more = " " * 22 + "# and more"
    text = f"a:\n  # heading\n\n  x: 1\n  # about y\n  y: 2  # more\n{more}\n  z: [1]\n    # in a list\n"
    (tmp_path / "p.yaml").write_text(text)
    assert comments(tmp_path / "p.yaml") == {"a.x": "", "a.y": "about y more and more", "a.z": ""}
